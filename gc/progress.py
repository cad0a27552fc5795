"""Where a training run stands, for people: on a terminal a tqdm bar, in a job's log file one
plain line per log interval (a carriage-return bar in a multi-day SLURM log is unreadable).

The same numbers (step / total, steps/s, ETA, last loss, last curve metric) feed `gcbench
status` (status.py), so a log line and a status row never disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm


def format_duration(seconds: float | None) -> str:
    """4d 03h, 2h 05m, 7m 12s, 42s; '-' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


def eta_seconds(step: int, total: int, steps_per_s: float | None) -> float | None:
    if not steps_per_s:
        return None
    return max(total - step, 0) / steps_per_s


def last_curve_metric(run_dir: str | Path) -> dict | None:
    """The headline metric of the latest evaluated snapshot (eval/step-*.json), with its step and
    sample count: {metric, value, step, n}; None before any evaluation."""
    latest = None
    for path in sorted((Path(run_dir) / "eval").glob("step-*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # being written right now: skip it this time
            continue
        rows = [m for m in record.get("metrics", []) if m.get("value") is not None]
        if not rows:
            continue
        key = (record["snapshot_step"], path.stat().st_mtime)
        if latest is None or key > latest[0]:
            metric = rows[0]
            latest = (key, metric, record)
    if latest is None:
        return None
    _, metric, record = latest
    return {
        "metric": metric["metric"],
        "value": metric["value"],
        "step": record["snapshot_step"],
        "n": record["sampling"]["n"],
    }


def format_metric(metric: dict | None) -> str:
    if metric is None:
        return "-"
    return f"{metric['metric']} {metric['value']:.4g} @ {metric['step']} (n={metric['n']})"


def log_line(row: dict, total: int, metric: dict | None = None) -> str:
    """One line per log interval, from a metrics.jsonl row:
    `step 1200/100000 (1.2%) | loss 0.01234 | 3.41 steps/s | ETA 8h 02m | fid 41.2 @ 1000 (n=10000)`
    """
    step = row["step"]
    rate = 1.0 / row["step_time"] if row.get("step_time") else None
    parts = [
        f"step {step}/{total} ({100 * step / total:.1f}%)",
        f"loss {row['loss']:.4g}",
        f"{rate:.3g} steps/s" if rate else "- steps/s",
        f"ETA {format_duration(eta_seconds(step, total, rate))}",
    ]
    if metric is not None:
        parts.append(format_metric(metric))
    return " | ".join(parts)


class Progress:
    """A tqdm bar when `stream` is a terminal; otherwise one `log_line` per logged row."""

    def __init__(
        self,
        total: int,
        initial: int,
        run_dir: str | Path,
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.total, self.run_dir, self.enabled = total, Path(run_dir), enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = enabled and self.stream.isatty()
        self.bar = (
            tqdm(total=total, initial=initial, unit="step", file=self.stream)
            if self.interactive
            else None
        )

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def logged(self, row: dict, **postfix) -> None:
        """A metrics row was written: refresh the bar, or print its line."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4g}", **postfix)
        elif self.enabled:
            line = log_line(row, self.total, last_curve_metric(self.run_dir))
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


TENSORBOARD_DIR = "tensorboard"
# metrics.jsonl keys written as TensorBoard scalars, under these tags.
_TAGS = {
    "loss": "train/loss",
    "transport_cost_ic": "train/transport_cost_ic",
    "transport_cost_gc": "train/transport_cost_gc",
    "gc_fraction": "train/gc_fraction",
    "n_points": "train/n_points",
    "images_per_s": "speed/images_per_s",
}


class Scalars:
    """The logged scalars as TensorBoard event files in RUN_DIR/tensorboard, beside
    metrics.jsonl (which stays the record): `tensorboard --logdir results/runs` shows a study."""

    def __init__(self, run_dir: str | Path, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "tensorboard=true needs the tensorboard package: pip install 'gcbench[tensorboard]'"
                ", or train with tensorboard=false (metrics.jsonl is written either way)"
            ) from None
        self.writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR))

    def add(self, row: dict, **extra: float) -> None:
        """One metrics row (and e.g. the learning rate) at its step."""
        if self.writer is None:
            return
        step = row["step"]
        for key, tag in _TAGS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], step)
        if row.get("step_time"):
            self.writer.add_scalar("speed/steps_per_s", 1.0 / row["step_time"], step)
        for key, value in extra.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()  # a job may be killed at any time: what was logged is on disk

    def add_curve(self, rows: list[dict]) -> None:
        """Convergence-curve points ({step, metric, value, n, steps, weights}) as `curve/...`."""
        if self.writer is None:
            return
        for r in (r for r in rows if r["value"] is not None):
            tag = f"curve/{r['metric']}_n{r['n']}_{r['steps']}step_{r['weights']}"
            self.writer.add_scalar(tag, r["value"], r["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
