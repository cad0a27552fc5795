"""CPU time from the training log to the tidy table: what the timing claims read (issue 21)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gcbench import checkpoint, measures, report
from gcbench.evaluate import EvalSpec, evaluate_curve
from gcbench.recipes import resolve
from gcbench.train import train


def _logged_run(root: Path, rows: list[dict], device: str = "cpu") -> Path:
    """A run directory with a training log, a curve at its logged steps and its hardware."""
    run = root / "runs" / "toy" / "ic" / "s0"
    (run / "eval").mkdir(parents=True)
    config = {"dataset": "toy2d", "coupling": "ic", "mu": 0.0, "total_steps": 20, "device": device}
    checkpoint.write_json(config, run / "config.json")
    for row in rows:
        checkpoint.append_jsonl(row, run / "metrics.jsonl")
    checkpoint.append_jsonl({"device": device, "world_size": 1}, run / "provenance.jsonl")
    curve = pd.DataFrame({"step": [r["step"] for r in rows], "metric": "frechet_2d"})
    curve = curve.assign(train_seconds=[r["train_seconds"] for r in rows], value=1.0, n=100)
    curve.assign(steps=1, weights="ema", mode="", label="").to_csv(run / "eval" / "curve.csv")
    return run


def _log_row(step: int, cpu: bool = True) -> dict:
    row = {"step": step, "loss": 1.0, "step_time": 0.02, "train_seconds": 0.02 * step}
    return row | ({"step_cpu_time": 0.01, "cpu_seconds": 0.01 * step} if cpu else {})


def test_the_tidy_table_carries_cpu_seconds_and_cpu_step_times(tmp_path):
    run = _logged_run(tmp_path, [_log_row(10), _log_row(20)])
    frame = report.tidy([run])
    curve = frame[frame.kind == "curve"].set_index("step")
    # The curve was evaluated before curves recorded CPU time: the training log's, by step.
    assert curve["cpu_seconds"].to_dict() == pytest.approx({10: 0.1, 20: 0.2})
    train = frame[frame.kind == "train"]
    assert set(train.metric) == {"loss", "step_time", "step_cpu_time"}
    assert train.loc[train.metric == "step_cpu_time", "value"].tolist() == [0.01, 0.01]
    assert set(frame["gpu"].dropna()) == {"cpu"} and set(frame["device"].dropna()) == {"cpu"}
    assert bool(measures.trained_on_cpu(frame).iloc[0]) is True


@pytest.mark.parametrize("logged", [(False, True), (False, False)], ids=["resumed", "never"])
def test_a_run_without_a_whole_cpu_count_has_none(tmp_path, logged):
    # "resumed": begun before CPU time was recorded, resumed after: its count restarted at the
    # resume, so no cumulative value is the run's. "never": an older run, no CPU fields at all.
    rows = [_log_row(step, cpu) for step, cpu in zip((10, 20), logged, strict=True)]
    frame = report.tidy([_logged_run(tmp_path, rows)])
    assert frame["cpu_seconds"].isna().all()
    curves = frame[frame.kind == "curve"].assign(role="ic")
    assert measures.budget_clock(curves).column == "train_seconds"
    assert "log no CPU time" in measures.budget_clock(curves).note


def test_training_and_its_curve_record_cpu_seconds_by_snapshot(tmp_path):
    run = tmp_path / "runs" / "toy" / "gc" / "s0"
    c = resolve("toy2d-gc", ["total_steps=20", "snapshot_every=10", "log_every=10", "device=cpu"])
    train(c, run, progress=False)
    logged = {r["step"]: r for r in checkpoint.read_metrics(run)}
    assert json.loads((run / "done.json").read_text())["cpu_seconds"] == logged[20]["cpu_seconds"]
    csv = pd.read_csv(evaluate_curve(run, EvalSpec(n=100, device="cpu")))
    assert csv["cpu_seconds"].tolist() == [logged[s]["cpu_seconds"] for s in csv["step"]]
    by_step = csv.groupby("step")["cpu_seconds"].first()  # a row per metric of a snapshot
    assert by_step.index.tolist() == [10, 20] and np.all(np.diff(by_step) > 0)
    (run / "eval" / "curve.csv").write_bytes(next((run / "eval").glob("curve-*.csv")).read_bytes())
    frame = report.tidy([run])
    curve = frame[frame.kind == "curve"]
    assert curve["cpu_seconds"].tolist() == csv["cpu_seconds"].tolist()
    assert set(frame.loc[frame.kind == "train", "metric"]) >= {"step_time", "step_cpu_time"}
    assert measures.budget_clock(curve.assign(role="gc")) == measures.CPU
