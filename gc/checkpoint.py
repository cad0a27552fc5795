"""Files a run directory holds, and how they are written.

  config.json          the resolved TrainConfig (written first; a resume must match it)
  provenance.jsonl     one line per start or resume: git commit, versions, host, job id
  metrics.jsonl        append-only training log, one JSON object per logged step
  state.pt             the resume state: weights, EMA, optimizer, step, every RNG state
  state.pt.sha256      its checksum; state.prev.pt (+ .sha256) is the one before it
  snapshots/step-NNNNNNN.pt   EMA and online weights for the convergence curve
  done.json            written last, when training reached total_steps

Resume state and snapshots are separate: snapshots are small and kept, the state is replaced.
Everything is written to a temporary file and renamed, so a crash mid-write never leaves a
partial file behind, and loaded with `weights_only=True`, so a file cannot run code. The resume
state also carries a sha256 and keeps its predecessor: a state that is truncated or corrupted
later (a full disk, a bad copy) is detected and the run resumes from the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

STATE = "state.pt"
SNAPSHOTS = "snapshots"
PROVENANCE = "provenance.jsonl"
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


class UnwritableError(RuntimeError):
    pass


def check_writable(folder: str | Path) -> None:
    """Fail early, with the fix, if `folder` cannot be created or written (a read-only
    filesystem, a file in the way, missing permissions): before any job is submitted."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UnwritableError(
            f"{folder} is not a writable directory ({err.strerror or err}); results are written "
            f"there: fix its permissions (chmod u+w), remove what is in the way, or run from a "
            f"directory you can write to"
        ) from None


def save(obj: dict, path: Path) -> None:
    import torch  # here, not at the top: the launcher reads JSON records without torch

    atomic_write(Path(path), lambda f: torch.save(obj, f))


def load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


class CorruptStateError(RuntimeError):
    pass


def sha256(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks (used for resume states, assets and datasets)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_state(obj: dict, path: Path) -> None:
    """Write the resume state with its checksum, keeping the previous state as state.prev.pt.
    At every instant at least one of the two is complete and matches its checksum."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.new")
    import torch

    atomic_write(tmp, lambda f: torch.save(obj, f))
    atomic_write(_sidecar(tmp), lambda f: f.write(sha256(tmp).encode()))
    prev = path.with_name(path.name.replace(".pt", ".prev.pt"))
    if path.exists() and _sidecar(path).exists():
        os.replace(path, prev)
        os.replace(_sidecar(path), _sidecar(prev))
    os.replace(tmp, path)
    os.replace(_sidecar(tmp), _sidecar(path))
    _fsync_dir(path.parent)


def remove_state(path: Path) -> list[Path]:
    """Remove a finished run's resume state (both copies and their checksums); return what
    was removed."""
    path = Path(path)
    prev = path.with_name(path.name.replace(".pt", ".prev.pt"))
    removed = [p for p in (path, _sidecar(path), prev, _sidecar(prev)) if p.exists()]
    for p in removed:
        p.unlink()
    return removed


def _verified(path: Path) -> dict | None:
    sidecar = _sidecar(path)
    if not path.exists() or not sidecar.exists():
        return None
    if sha256(path) != sidecar.read_text().strip():
        return None
    try:
        return load(path)
    except Exception:  # a matching hash over an unreadable file: treat as corrupt too
        return None


def load_state(path: Path, log=print) -> dict | None:
    """The latest resume state that passes its checksum (state.pt, else state.prev.pt, saying
    so); None for a fresh run; an error if states exist but none is intact."""
    path = Path(path)
    prev = path.with_name(path.name.replace(".pt", ".prev.pt"))
    candidates = [p for p in (path, prev) if p.exists()]
    if not candidates:
        return None
    state = _verified(path)
    if state is not None:
        return state
    state = _verified(prev)
    if state is not None:
        log(
            f"warning: {path} is missing, truncated or fails its checksum; resuming from "
            f"{prev.name} at step {state['step']}"
        )
        return state
    raise CorruptStateError(
        f"no intact resume state in {path.parent}: {', '.join(p.name for p in candidates)} fail "
        f"their checksums. Restart the run from its last snapshot or from scratch (remove them)."
    )


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


def run_hardware(run_dir: Path) -> dict:
    """What a run trained on, from its provenance (one entry per start and resume): the GPU
    model ("cpu" without one; models joined by " + " where a resume landed on another; None if
    nothing is recorded) and the GPU count of its latest start (0 on CPU)."""
    events = [e for e in read_jsonl(Path(run_dir) / PROVENANCE) if e.get("device")]
    models = sorted({str(e["device"]) for e in events})
    last = events[-1] if events else {}
    count = 0 if last.get("device", "cpu") == "cpu" else int(last.get("world_size", 1))
    return {"gpu": " + ".join(models) or None, "gpu_count": count if events else None}


def read_metrics(run_dir: Path) -> list[dict]:
    """The training log with one row per step: a step logged twice (a run killed after logging
    but before its next checkpoint, then resumed) keeps its latest row."""
    rows = {row["step"]: row for row in read_jsonl(Path(run_dir) / "metrics.jsonl")}
    return [rows[s] for s in sorted(rows)]


def cpu_seconds(rows: list[dict]) -> dict[int, float]:
    """Each logged step's cumulative CPU seconds of the training loop (`read_metrics` rows);
    empty where any row lacks them: a run begun before CPU time was recorded restarted its
    count at a resume, so none of its counts is the whole run's."""
    if not rows or any(r.get("cpu_seconds") is None for r in rows):
        return {}
    return {r["step"]: float(r["cpu_seconds"]) for r in rows}


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


PRUNED = "snapshots_pruned.json"


def prune_snapshots(run_dir: Path) -> list[Path]:
    """Keep only a finished run's final snapshot; record which steps were removed, so that a
    later curve evaluation refuses rather than draws one point."""
    run_dir = Path(run_dir)
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        return []
    final = max(snapshots)
    removed = [path for step, path in sorted(snapshots.items()) if step != final]
    if removed:
        record = run_dir / PRUNED
        before = read_json(record)["steps"] if record.exists() else []
        steps = sorted({*before, *(s for s in snapshots if s != final)})
        write_json({"kept": final, "steps": steps}, record)
    for path in removed:
        path.unlink()
    return removed


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
