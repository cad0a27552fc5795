"""The claims report: the verdict rule, pairing by role and seed, the wall-clock snapshot."""

import math

import numpy as np
import pandas as pd
import pytest
from gcbench import claims


def _diffs(*values):
    return pd.Series(values, dtype=float)


def test_verdict_rule_on_the_paper_side_reproduces():
    # Paper: GC below IC (differences < 0). Interval wholly below zero.
    assert claims.verdict(_diffs(-5.0, -6.0, -5.5), paper_sign=-1) == "reproduced"


def test_verdict_rule_wholly_on_the_other_side_contradicts():
    assert claims.verdict(_diffs(5.0, 6.0, 5.5), paper_sign=-1) == "contradicted"
    # The same numbers reproduce a claim whose paper side is "above" (e.g. dropout hurts).
    assert claims.verdict(_diffs(5.0, 6.0, 5.5), paper_sign=+1) == "reproduced"


def test_verdict_rule_interval_across_zero_is_inconclusive():
    assert claims.verdict(_diffs(-5.0, 4.0, -1.0), paper_sign=-1) == "inconclusive"


def test_verdict_rule_needs_two_pairs():
    assert claims.verdict(_diffs(-100.0), paper_sign=-1) == "inconclusive"
    # A missing seed (NaN) is dropped, not counted: one pair is left.
    assert claims.verdict(_diffs(-100.0, math.nan), paper_sign=-1) == "inconclusive"
    assert claims.verdict(_diffs(), paper_sign=-1) == "inconclusive"


def test_verdict_rule_against_a_threshold():
    # GC's step-time overhead: the paper's side is "at most +20%".
    assert claims.verdict(_diffs(0.08, 0.10, 0.09), -1, threshold=0.2) == "reproduced"
    assert claims.verdict(_diffs(0.30, 0.32, 0.31), -1, threshold=0.2) == "contradicted"


def test_nearest_snapshot_in_wall_clock():
    curve = pd.DataFrame(
        {
            "step": [100, 200, 300, 400],
            "train_seconds": [9.0, 21.0, 30.5, 41.0],
            "value": [4, 3, 2, 1],
        }
    )
    assert claims.nearest_in_time(curve, 29.0)["step"] == 300
    assert claims.nearest_in_time(curve, 14.0)["step"] == 100  # 5 s away, not 7
    assert claims.nearest_in_time(curve, 1e6)["step"] == 400


def test_log_auc_is_the_mean_of_the_log_metric_over_training():
    flat = pd.DataFrame({"step": [100, 200, 300], "value": [np.e, np.e, np.e]})
    assert claims.log_auc(flat) == pytest.approx(1.0)
    falling = pd.DataFrame({"step": [300, 100, 200], "value": [1.0, np.e**2, np.e]})
    assert claims.log_auc(falling) == pytest.approx(1.0)  # sorted by step: 2, 1, 0


def _run_rows(variant, coupling, seed, final, curve, seconds_per_step, **config):
    meta = {
        "experiment": "digits8",
        "variant": variant,
        "seed": seed,
        "run": f"r/{variant}/s{seed}",
        "dataset": "digits8",
        "coupling": coupling,
        "mu": config.get("mu", 0.5 if coupling == "gc" else 0.0),
        "endpoint": config.get("endpoint", "ema"),
        "max_dropout": config.get("dropout", 0.0),
        "total_steps": 300,
        "batch_size": 128,
        "mode": "",
    }
    rows = [
        meta
        | dict(kind="final", step=300, metric="fd_digits", value=final, steps=1.0)
        | dict(weights="ema", n=1000)
    ]
    for k, value in enumerate(curve, start=1):
        rows.append(
            meta
            | dict(kind="curve", step=100 * k, train_seconds=100 * k * seconds_per_step)
            | dict(metric="fd_digits", value=value, steps=1.0, weights="ema", n=300)
        )
        rows.append(
            meta | dict(kind="train", step=100 * k, metric="step_time", value=seconds_per_step)
        )
    return rows


def _study(gc_final_offsets=(-10.0, -12.0, -11.0)):
    rows = []
    for seed, offset in enumerate(gc_final_offsets):
        base = 50.0 + seed
        rows += _run_rows("ic", "ic", seed, base, [200, 100, base], 0.010)
        rows += _run_rows("ot", "ot", seed, base + 1, [210, 105, base + 1], 0.012)
        # GC is 30% slower per step: at IC's 3 s it has done about 230 steps (snapshot 200).
        rows += _run_rows("gc", "gc", seed, base + offset, [150, 70, base + offset], 0.013)
    frame = pd.DataFrame(rows)
    frame["sigma"] = np.nan
    return frame


def test_claims_pair_by_seed_and_say_what_they_measured():
    table = claims.claims(_study()).set_index("claim")
    ends = table.loc["GC ends below IC"]
    assert ends["pairs"] == 3 and ends["mean"] == pytest.approx(-11.0)
    assert ends["verdict"] == "reproduced"
    assert table.loc["GC ends below batch OT", "mean"] == pytest.approx(-12.0)
    assert table.loc["GC converges faster: below IC at matched iterations", "verdict"] == (
        "reproduced"
    )
    # At IC's total 3.0 s, GC's nearest snapshot is step 200 (2.6 s): 70 vs IC's final 50-52.
    wall = table.loc["GC beats IC at IC's wall-clock"]
    assert wall["mean"] == pytest.approx(70 - 51.0)
    assert wall["verdict"] == "contradicted"
    overhead = table.loc["GC costs at most about +20% per step"]
    assert overhead["mean"] == pytest.approx(0.3)
    assert overhead["verdict"] == "contradicted"


def test_claims_with_a_missing_seed_count_fewer_pairs():
    frame = _study()
    frame = frame[~((frame.variant == "gc") & (frame.seed == 2))]
    ends = claims.claims(frame).set_index("claim").loc["GC ends below IC"]
    assert ends["pairs"] == 2 and ends["mean"] == pytest.approx(-11.0)


def test_ablation_roles_come_from_the_config_not_the_name():
    frame = _study()
    extra = []
    for seed in range(3):
        extra += _run_rows("whatever", "gc", seed, 80.0 + seed, [1, 1, 1], 0.01, endpoint="online")
        extra += _run_rows("drop", "gc", seed, 40.0 + seed, [1, 1, 1], 0.01, dropout=0.2)
        extra += _run_rows("m", "gc", seed, 45.0 + seed, [1, 1, 1], 0.01, mu=0.3)
    table = claims.claims(pd.concat([frame, pd.DataFrame(extra)])).set_index("claim")
    ema = table.loc["the EMA endpoint beats the online one"]
    assert ema["mean"] == pytest.approx(-41.0) and ema["verdict"] == "reproduced"
    dropout = table.loc["dropout hurts GC"]
    assert dropout["mean"] == pytest.approx(1.0) and dropout["verdict"] == "inconclusive"
    mu = table.loc["GC mu = 0.3 ends below IC (mu = 0)"]
    assert mu["mean"] == pytest.approx(-5.0) and mu["pairs"] == 3


def test_runs_of_another_budget_never_pair():
    frame = _study()
    longer = frame[frame.variant == "gc"].assign(total_steps=600, run=lambda f: f["run"] + "L")
    frame = pd.concat([frame[frame.variant != "gc"], longer])
    assert "GC ends below IC" not in set(claims.claims(frame)["claim"])
