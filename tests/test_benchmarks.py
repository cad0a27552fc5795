"""The benchmarks the README shows run and print what it says, at tiny size (their numbers
are measurements for the README, not test assertions)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict | None = None) -> str:
    out = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bf16_benchmark_prints_speed_and_loss_shift_per_seed():
    out = _run("benchmarks/bf16_cpu.py", "--seeds", "0", "1", "--steps", "40")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"] and all(len(r) == 5 for r in rows)
    assert "bf16 / fp32 CPU time per step" in out and "late-loss shift bf16 - fp32" in out


def test_startup_benchmark_times_both_jobs(tmp_path):
    env = os.environ | {"GCBENCH_CACHE": str(tmp_path)}  # its classifier, not the user's cache
    out = _run("benchmarks/startup.py", "--rounds", "1", env=env)
    assert "train     this checkout:" in out and "evaluate  this checkout:" in out
