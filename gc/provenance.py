"""Where a result came from: code version, library versions, machine and scheduler job."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

_PACKAGES = ("gcbench", "torch", "numpy", "scipy", "lion-pytorch", "clean-fid", "torch-fidelity")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect(**extra) -> dict:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    cuda = torch.cuda.is_available()
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "versions": {p: package_version(p) for p in _PACKAGES}
        | {"python": platform.python_version()},
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "argv": sys.argv,
        **extra,
    }
