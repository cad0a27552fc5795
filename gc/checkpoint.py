"""Files a run directory holds, and how they are written.

  config.json          the resolved TrainConfig (written first; a resume must match it)
  provenance.jsonl     one line per start or resume: git commit, versions, host, job id
  metrics.jsonl        append-only training log, one JSON object per logged step
  state.pt             the resume state: weights, EMA, optimizer, step, every RNG state
  snapshots/step-NNNNNNN.pt   EMA and online weights for the convergence curve
  done.json            written last, when training reached total_steps

Resume state and snapshots are separate: snapshots are small and kept, the state is replaced.
Everything is written to a temporary file and renamed, so a crash mid-write never leaves a
partial file behind, and loaded with `weights_only=True`, so a file cannot run code.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

STATE = "state.pt"
SNAPSHOTS = "snapshots"
_SNAPSHOT_RE = re.compile(r"step-(\d+)\.pt$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary sibling, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save(obj: dict, path: Path) -> None:
    atomic_write(Path(path), lambda f: torch.save(obj, f))


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(obj: dict, path: Path) -> None:
    atomic_write(Path(path), lambda f: f.write(json.dumps(obj, indent=2).encode() + b"\n"))


def append_jsonl(obj: dict, path: Path) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: Path) -> list[dict]:
    """The training log with one row per step: a step logged twice (a run killed after logging
    but before its next checkpoint, then resumed) keeps its latest row."""
    rows = {row["step"]: row for row in read_jsonl(Path(run_dir) / "metrics.jsonl")}
    return [rows[s] for s in sorted(rows)]


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"step-{step:07d}.pt"


def list_snapshots(run_dir: Path) -> dict[int, Path]:
    folder = Path(run_dir) / SNAPSHOTS
    found = {}
    for p in folder.glob("step-*.pt") if folder.exists() else ():
        if m := _SNAPSHOT_RE.search(p.name):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def find_snapshot(run_dir: Path, which: str | int = "final") -> Path:
    """A snapshot by step number, or the latest one for 'final'."""
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise FileNotFoundError(f"{run_dir} holds no snapshots; train it first (gcbench train)")
    if which in ("final", "latest"):
        return snapshots[max(snapshots)]
    step = int(which)
    if step not in snapshots:
        raise FileNotFoundError(f"no snapshot at step {step} in {run_dir}; have {list(snapshots)}")
    return snapshots[step]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
