"""Paper-scale tables from fake runs: what each cell averages, and what it refuses to average."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from gcbench import checkpoint
from gcbench import study as studies
from gcbench.figures import mu_sweep_frame
from gcbench.recipes import resolve
from gcbench.report import (
    PAIRED_COLUMN,
    report,
    same_wallclock_table,
    summary_table,
    tidy,
)

SHA = "a" * 64


def _run(root: Path, experiment: str, variant: str, seed: int, evals: list[dict], **config):
    run = root / "runs" / experiment / variant / f"s{seed}"
    run.mkdir(parents=True)
    coupling = config.pop("coupling", variant if variant in ("ic", "ot") else "gc")
    checkpoint.write_json(
        {
            "dataset": config.pop("dataset", "cifar10"),
            "coupling": coupling,
            "mu": config.pop("mu", 0.5 if coupling == "gc" else 0.0),
            "endpoint": config.pop("endpoint", "ema"),
            "dropout": config.pop("dropout", [0.3] * 3 if coupling == "ic" else [0.0] * 3),
            "total_steps": 100_000,
            "batch_size": 512,
        }
        | config,  # e.g. objective, ect_stage_steps
        run / "config.json",
    )
    records = []
    for e in evals:
        metrics = [
            {"metric": "fid", "mode": "legacy_tensorflow", "value": e["fid"]}
            | {"extractor_sha256": e.get("sha", SHA)},
            {"metric": "kid", "mode": "clean", "value": e.get("kid", 0.004)},
            {"metric": "inception_score", "value": e.get("is", 9.0)},
        ]
        sampling = {"steps": e.get("steps", 1), "weights": e.get("weights", "ema"), "n": e["n"]}
        sampling["seed"] = e.get("eval_seed", 0)
        records.append({"snapshot_step": 100_000, "sampling": sampling, "metrics": metrics})
    (run / "eval").mkdir()
    (run / "eval" / "final.json").write_text(json.dumps(records))
    checkpoint.write_json({"step": 100_000}, run / "done.json")
    return run


def _full(fid: float, seed: int) -> list[dict]:
    """1- and 2-step, EMA and online, 10k and 50k: what a thorough evaluation writes."""
    out = []
    for n, steps, weights in [
        (50_000, 1, "ema"),
        (50_000, 2, "ema"),
        (50_000, 1, "online"),
        (10_000, 1, "ema"),
    ]:
        shift = (steps - 1) * -1.0 + (weights == "online") * 2.0 + (n == 10_000) * 0.5
        out.append({"fid": fid + shift + 0.1 * seed, "n": n, "steps": steps, "weights": weights})
    return out


@pytest.fixture
def study(tmp_path):
    runs = []
    for seed in range(3):
        runs.append(_run(tmp_path, "cifar10", "ic", seed, _full(7.0, seed)))
        runs.append(_run(tmp_path, "cifar10", "gc", seed, _full(6.0, seed)))
        runs.append(
            _run(
                tmp_path,
                "cifar10_ablations",
                "gc_online_endpoint",
                seed,
                _full(6.5 + 0.2 * seed, seed),
                endpoint="online",
            )
        )
    return tmp_path, runs


def test_each_cell_says_what_it_averages_and_averages_only_that(study):
    _, runs = study
    frame = tidy(runs)
    one = summary_table(frame[frame.experiment == "cifar10"], 1, "ema").set_index("variant")
    assert one.loc["gc", "metric"] == "FID ↓ (legacy_tensorflow, 1-step, n=50000, EMA)"
    assert one.loc["gc", "mean"] == pytest.approx(6.1)  # the 50k EMA 1-step rows only
    online = summary_table(frame[frame.experiment == "cifar10"], 1, "online").set_index("variant")
    assert online.loc["gc", "mean"] == pytest.approx(8.1)
    assert online.loc["gc", "metric"].endswith("n=50000, online)")


def test_two_step_tables_have_no_paper_numbers(study):
    _, runs = study
    frame = tidy(runs)
    one = summary_table(frame[frame.experiment == "cifar10"], 1).set_index("variant")
    assert one.loc["gc", "paper"] == 5.95 and one.loc["gc", "gap"] == pytest.approx(0.15)
    two = summary_table(frame[frame.experiment == "cifar10"], 2).set_index("variant")
    assert two.loc["gc", "mean"] == pytest.approx(5.1)
    assert pd.isna(two.loc["gc", "paper"]) and pd.isna(two.loc["gc", "gap"])
    assert pd.isna(two.loc["gc", "paper KID×10²"])


def test_ablations_pair_with_the_ic_runs_of_another_experiment(study):
    _, runs = study
    frame = tidy(runs)
    table3 = frame[frame.experiment == "cifar10_ablations"]
    row = summary_table(table3, 1, pool=frame).set_index("variant").loc["gc_online_endpoint"]
    # Online endpoint minus IC, same seed: (6.5 + 0.2 s + 0.1 s) - (7.0 + 0.1 s) = -0.5 + 0.2 s.
    assert row["pairs"] == 3 and row[PAIRED_COLUMN] == "-0.30 ± 0.50"
    assert row["paper"] == 6.73


def test_kid_and_inception_score_beside_the_papers(study):
    _, runs = study
    frame = tidy(runs)
    table = summary_table(frame[frame.experiment == "cifar10"], 1).set_index("variant")
    assert (
        table.loc["gc", "KID×10²"] == "0.400 ± n/a"
    )  # 0.004 x 100, identical over seeds: no spread
    assert table.loc["gc", "paper KID×10²"] == 0.26 and table.loc["ic", "paper IS"] == 8.76
    assert table.loc["gc", "IS"].startswith("9")


def test_different_extractors_or_sample_counts_are_never_averaged(tmp_path):
    runs = [
        _run(tmp_path, "cifar10", "gc", 0, [{"fid": 6.0, "n": 50_000}]),
        _run(tmp_path, "cifar10", "gc", 1, [{"fid": 6.2, "n": 50_000, "sha": "b" * 64}]),
        _run(tmp_path, "cifar10", "ic", 0, [{"fid": 7.0, "n": 50_000}]),
        _run(
            tmp_path,
            "cifar10",
            "ic",
            1,
            [{"fid": 7.1, "n": 50_000}, {"fid": 7.3, "n": 50_000, "eval_seed": 1}],
        ),
    ]
    # OT's seed 1 was scored on 10k only: named, never dropped as a "missing seed".
    runs += [
        _run(tmp_path, "cifar10", "ot", 0, [{"fid": 6.5, "n": 50_000}]),
        _run(tmp_path, "cifar10", "ot", 1, [{"fid": 6.9, "n": 10_000}]),
    ]
    table = summary_table(tidy(runs), 1).set_index("variant")
    assert table.loc["ot", "ours"] == (
        "not averaged: sample count differs from the table's n=50000 (n=10000: cifar10/ot/s1)"
    )
    assert table.loc["ot", "KID×10²"].startswith("not averaged: sample count differs")
    assert table.loc["gc", "ours"].startswith("not averaged: feature extractor differs")
    assert "cifar10/gc/s1" in table.loc["gc", "ours"] and "bbbbbbbbbbbb" in table.loc["gc", "ours"]
    assert table.loc["ic", "ours"].startswith("not averaged: several evaluations of one run")
    assert "cifar10/ic/s1" in table.loc["ic", "ours"]


def test_the_report_writes_every_table_variant(study):
    root, runs = study
    report(root, runs, {"cifar10": "table1", "cifar10_ablations": "table3"})
    for name in ("table1", "table1_2step", "table1_online", "table3", "table3_online"):
        assert (root / "tables" / f"{name}.md").exists(), name
    assert "n=50000" in (root / "tables" / "table1.md").read_text()


def test_mu_sweep_keeps_one_protocol_and_plots_ic_apart(tmp_path):
    runs = []
    for seed in range(2):
        ic_evals = [{"fid": 7.0, "n": 50_000}, {"fid": 7.5 + seed, "n": 10_000}]
        runs.append(_run(tmp_path, "cifar10", "ic", seed, ic_evals))
        runs.append(
            _run(
                tmp_path,
                "cifar10",
                "gc",
                seed,
                [{"fid": 6.0, "n": 50_000}, {"fid": 6.9, "n": 10_000}],
            )
        )
        for mu in (0.0, 0.3):
            evals = [{"fid": 6.5 - mu, "n": 10_000}]
            runs.append(_run(tmp_path, "sweep", f"mu{mu}", seed, evals, mu=mu))
    gc, ic = mu_sweep_frame(tidy(runs), ["sweep"])
    # The sweep is scored on 10k: GC mu = 0.5 joins with its 10k row, never its 50k one.
    assert sorted(gc["mu"].unique()) == [0.0, 0.3, 0.5]
    assert set(gc.loc[gc.mu == 0.5, "value"]) == {6.9}
    # mu = 0 is GC without dropout at mu = 0 only: IC (dropout 0.3) is its own series.
    assert set(gc.loc[gc.mu == 0.0, "value"]) == {6.5} and "ic" not in set(gc.role)
    assert sorted(ic) == [7.5, 8.5]  # IC's 10k rows, never its 50k one


def test_mu_sweep_leaves_ic_out_when_it_was_scored_otherwise(tmp_path):
    runs = [_run(tmp_path, "cifar10", "ic", 0, [{"fid": 7.0, "n": 50_000}])]
    runs.append(_run(tmp_path, "sweep", "mu0.3", 0, [{"fid": 6.2, "n": 10_000}], mu=0.3))
    gc, ic = mu_sweep_frame(tidy(runs), ["sweep"])
    assert list(gc["value"]) == [6.2]
    assert ic.empty  # IC has no 10k row: left out rather than mixed in


def _curve(run: Path, values: list[float], seconds_per_step: float) -> None:
    rows = ["step,train_seconds,metric,value,n,steps,weights,mode,label"]
    for k, value in enumerate(values, start=1):
        step = 10_000 * k
        rows.append(f"{step},{step * seconds_per_step},fid,{value},10000,1,ema,legacy_tensorflow,")
    (run / "eval" / "curve.csv").write_text("\n".join(rows) + "\n")


def test_same_wall_clock_is_the_gc_run_at_ic_training_seconds(tmp_path):
    runs = []
    for seed in range(2):
        ic = _run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000}])
        gc = _run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0, "n": 50_000}])
        # Ten snapshots; GC is 25% slower per step, so at IC's 100 s it is at step 80 000.
        _curve(ic, [20 - k for k in range(10)], 0.001)
        _curve(gc, [19 - k - 0.5 * seed for k in range(10)], 0.00125)
        runs += [ic, gc]
        dropout = {"dropout": [0.3] * 3}
        runs.append(
            _run(tmp_path, "abl", "gc_dropout", seed, [{"fid": 8.0, "n": 50_000}], **dropout)
        )
    report(tmp_path, runs, {"cifar10": "table1", "abl": "table3"})
    table = pd.read_csv(tmp_path / "tables" / "table3.csv").set_index("variant")
    row = table.loc["gc at IC's wall-clock"]
    assert "steps ≈ 80000, 80000" in row["metric"] and "n=10000" in row["metric"]
    assert row["seeds"] == "2/2" and pd.isna(row["missing seeds"])
    assert row["mean"] == pytest.approx((12 + 11.5) / 2)  # step 80 000: 19 - 7 - 0.5 seed
    assert row["paper"] == 6.38 and row["pairs"] == 2
    assert pd.isna(row["gap"])  # the paper's 6.38 is at 50k samples, this curve at 10k
    assert row[PAIRED_COLUMN] == "+0.7 ± 3.2"  # minus IC's last curve value, 11


def test_gaps_to_the_paper_only_on_its_50k_protocol(tmp_path):
    runs = []
    for seed in range(2):
        ic = _run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000}])
        gc = _run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0, "n": 50_000}])
        _curve(ic, [20 - k for k in range(10)], 0.001)
        _curve(gc, [19 - k for k in range(10)], 0.00125)
        (gc / "eval" / "curve.csv").write_text(
            (gc / "eval" / "curve.csv").read_text().replace(",10000,", ",50000,")
        )
        (ic / "eval" / "curve.csv").write_text(
            (ic / "eval" / "curve.csv").read_text().replace(",10000,", ",50000,")
        )
        runs += [ic, gc]
    frame = tidy(runs)
    row = same_wallclock_table(frame, frame[frame.experiment == "cifar10"]).iloc[0]
    assert row["gap"] == pytest.approx(round(row["mean"] - 6.38, 2))  # curve at 50k: comparable
    scored_10k = [_run(tmp_path / "b", "cifar10", "gc", 0, [{"fid": 6.0, "n": 10_000}])]
    table = summary_table(tidy(scored_10k), 1).set_index("variant")
    assert table.loc["gc", "paper"] == 5.95 and pd.isna(table.loc["gc", "gap"])


def test_a_study_where_no_run_started_still_gets_its_tables(tmp_path):
    runs = [tmp_path / "runs" / "digits8" / v / "s0" for v in ("ic", "gc")]
    report(tmp_path, runs, {"digits8": "table1"})
    table = (tmp_path / "tables" / "table1.md").read_text()
    assert table.count("0/1") == 2 and "no finished run" in table
    assert "no finished pair of runs" in (tmp_path / "claims.md").read_text()
    assert "digits8/gc/s0" in (tmp_path / "README.md").read_text()


# ---- Table 2: ECT fine-tuning from a pretrained EDM denoiser ------------------------------------

ECT = {"objective": "ect", "dropout": [0.2] * 3}  # ECT keeps dropout in both arms


def _ect_study(root: Path) -> list[Path]:
    """iCT (Table 1), ECT short and long (Table 2) on CIFAR-10 with the same training budget and
    batch, so that only the setting keeps them apart, and the EDM denoiser ECT starts from."""
    runs = []
    for seed in range(3):
        # iCT: GC - IC = -1.0 at every seed.
        runs.append(_run(root, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000}]))
        runs.append(_run(root, "cifar10", "gc", seed, [{"fid": 6.0, "n": 50_000}]))
        for exp, stages, ic, gc in (
            ("cifar10_ect_short", 0, 7.5 + 0.1 * seed, 6.5 + 0.2 * seed),  # GC - IC: -1.0 + 0.1 s
            ("cifar10_ect_long", 25_000, 4.0 + 0.1 * seed, 3.8 + 0.15 * seed),  # -0.2 + 0.05 s
        ):
            cfg = ECT | {"ect_stage_steps": stages}
            runs.append(_run(root, exp, "ic", seed, [{"fid": ic, "n": 50_000}], **cfg))
            runs.append(_run(root, exp, "gc", seed, [{"fid": gc, "n": 50_000}], mu=0.3, **cfg))
    denoiser = [{"fid": 30.0, "n": 50_000}]
    runs.append(_run(root, "cifar10_pretrain", "denoiser", 0, denoiser, objective="edm"))
    return runs


def test_table2_takes_the_papers_ect_numbers_and_pairs_within_each_setting(tmp_path):
    runs = _ect_study(tmp_path)
    tables = {"cifar10": "table1", "cifar10_pretrain": "table2"}
    tables |= {"cifar10_ect_short": "table2", "cifar10_ect_long": "table2"}
    report(tmp_path, runs, tables)
    table = pd.read_csv(tmp_path / "tables" / "table2.csv")
    table["paper source"] = table["paper source"].fillna("")
    assert list(table.columns[:5]) == ["experiment", "variant", "method", "setting", "final step"]
    table = table.set_index(["experiment", "variant"])
    short, long = table.loc["cifar10_ect_short"], table.loc["cifar10_ect_long"]
    assert str(short.loc["gc", "final step"]) == "100000"  # where each run stopped
    assert set(short["setting"]) == {"ECT short"} and set(long["setting"]) == {"ECT long"}
    # The paper column is Table 2's number for the run's setting, never Table 1's.
    assert (short.loc["ic", "paper"], short.loc["gc", "paper"]) == (7.37, 6.41)
    assert (long.loc["ic", "paper"], long.loc["gc", "paper"]) == (4.11, 3.74)
    assert set(table["paper source"]) == {"Table 2", ""}
    assert short.loc["gc", "gap"] == pytest.approx(6.7 - 6.41, abs=0.01)
    assert short[["paper KID×10²", "paper IS"]].isna().all(axis=None)  # Table 2 gives FID only
    # GC pairs with the IC of its own setting and seed only: short -1.0, -0.9, -0.8; long -0.2,
    # -0.15, -0.1.
    # (Across settings it would be about -3.7; with iCT's IC, -0.5 or -3.2.)
    assert short.loc["gc", "pairs"] == 3 and short.loc["gc", PAIRED_COLUMN] == "-0.90 ± 0.25"
    assert long.loc["gc", "pairs"] == 3 and long.loc["gc", PAIRED_COLUMN].startswith("-0.15 ±")
    # The pretrained denoiser: its own row, its own setting, no paper value and nothing paired.
    denoiser = table.loc[("cifar10_pretrain", "denoiser")]
    assert denoiser["setting"] == "EDM pretraining" and denoiser["mean"] == 30.0
    assert pd.isna(denoiser["paper"]) and denoiser["paper source"] == ""
    assert denoiser["pairs"] == 0 and denoiser["seeds"] == "1/1"
    # Table 1 is unchanged: Table 1's numbers, iCT pairs, no setting column.
    table1 = pd.read_csv(tmp_path / "tables" / "table1.csv").set_index("variant")
    assert "setting" not in table1 and table1.loc["gc", "paper"] == 5.95
    assert table1.loc["gc", PAIRED_COLUMN] == "-1.00 ± n/a" and table1.loc["gc", "pairs"] == 3
    assert "| `tables/table2` | `.csv`" in (tmp_path / "README.md").read_text()


def _ran_on(run: Path, *devices: str, world_size: int = 1) -> Path:
    """The run's provenance: one start (then resumes) on each of `devices`."""
    for device in devices:
        checkpoint.append_jsonl(
            dict(device=device, world_size=world_size), run / "provenance.jsonl"
        )
    return run


def test_wall_clock_budgets_pair_only_runs_on_the_same_gpus(tmp_path):
    a100, h100 = "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"
    runs = []
    for seed in range(3):
        for exp, cap in (("cifar10_ect_short", 3600.0), ("cifar10_ect_long", 0.0)):
            cfg = ECT | {"ect_stage_steps": 0 if cap else 25_000, "max_train_seconds": cap}
            ic = _run(tmp_path, exp, "ic", seed, [{"fid": 7.0, "n": 50_000}], **cfg)
            gc = _run(tmp_path, exp, "gc", seed, [{"fid": 6.0, "n": 50_000}], mu=0.3, **cfg)
            runs += [_ran_on(ic, a100), _ran_on(gc, h100 if seed == 1 else a100)]
    frame = tidy(runs)
    assert set(frame["gpu"]) == {a100, h100} and set(frame["gpu_count"]) == {1}
    table = summary_table(frame, 1).set_index(["experiment", "variant"])
    short, long = table.loc[("cifar10_ect_short", "gc")], table.loc[("cifar10_ect_long", "gc")]
    # ECT short's hour on an H100 is another budget than on an A100: the pair is refused,
    # naming the seed (as every pairing rule of gc/selection.py refuses: never a silent drop).
    assert short["pairs"] == 0
    assert short[PAIRED_COLUMN] == f"refused: seed 1 not paired: gc on 1 × {h100}, ic on 1 × {a100}"
    assert long["pairs"] == 3 and long[PAIRED_COLUMN] == "-1.00 ± n/a"  # a step budget pairs
    # A run resumed on another model, or on more GPUs, is another budget too.
    (tmp_path / "resumed").mkdir()
    assert checkpoint.run_hardware(_ran_on(tmp_path / "resumed", a100, h100, world_size=8)) == {
        "gpu": f"{a100} + {h100}",
        "gpu_count": 8,
    }


def test_unconfirmed_ffhq64_rows_say_so(tmp_path):
    runs = []
    for seed in range(2):
        for variant, fid in (("ic", 10.0), ("gc", 9.0)):
            evals = [{"fid": fid + seed, "n": 50_000}]
            mu = 0.3 if variant == "gc" else 0.0
            cfg = ECT | {"ect_stage_steps": 25_000, "dataset": "ffhq64", "mu": mu}
            runs.append(_run(tmp_path, "ffhq64_ect_long", variant, seed, evals, **cfg))
    table = summary_table(tidy(runs), 1).set_index("variant")
    assert (table.loc["ic", "paper"], table.loc["gc", "paper"]) == (9.68, 8.51)
    assert set(table["paper source"]) == {
        "Table 2 (unconfirmed: only in other versions of the paper)"
    }
    assert table.loc["gc", PAIRED_COLUMN] == "-1.00 ± n/a"


def test_ect_runs_stay_out_of_the_ict_mu_sweep_and_wall_clock_rows(tmp_path):
    runs = []
    for seed in range(2):
        ic = _run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000}])
        gc = _run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0, "n": 10_000}])
        runs += [
            ic,
            gc,
            _run(tmp_path, "sweep", "mu0.3", seed, [{"fid": 6.2, "n": 10_000}], mu=0.3),
        ]
        # ECT's IC and GC on CIFAR-10, scored on the sweep's 10k and with curves of their own.
        ect_ic = _run(tmp_path, "ect", "ic", seed, [{"fid": 9.0, "n": 10_000}], **ECT)
        ect_gc = _run(tmp_path, "ect", "gc", seed, [{"fid": 8.0, "n": 10_000}], mu=0.3, **ECT)
        _curve(ect_ic, [20 - k for k in range(10)], 0.001)
        _curve(ect_gc, [19 - k for k in range(10)], 0.00125)
        runs += [ect_ic, ect_gc]
    frame = tidy(runs)
    gc, ic = mu_sweep_frame(frame, ["sweep"])
    assert ic.empty  # iCT's IC has no 10k row; ECT's IC is another setting
    assert set(gc["experiment"]) == {"sweep", "cifar10"}
    assert same_wallclock_table(frame, frame[frame.experiment == "sweep"]).empty


def test_paper_study_takes_same_wall_clock_from_the_full_length_gc_run():
    # Table 3's "same wall-clock as IC" is the Table 1 GC run read at IC's training seconds:
    # no shortened run (its iCT curriculum would be compressed), and snapshots dense in time.
    config = yaml.safe_load(Path("workflow/config/paper.yaml").read_text())
    runs = {(r.experiment, r.variant): r.config() for r in studies.runs(config)}
    full = resolve("cifar10-gc").total_steps
    cifar_ict = [c for (e, _), c in runs.items() if c.dataset == "cifar10" and c.objective == "ict"]
    assert {c.total_steps for c in cifar_ict} == {full}
    gc = runs[("cifar10", "gc")]
    # GC is read between snapshots at most 5% of training apart: well within the interpolation
    # bracket that claims.same_budget allows (MAX_BRACKET of IC's budget).
    assert gc.snapshot_every * 20 <= gc.total_steps


# ---- issue 25: pairing groups, one selection rule, one-seed bands ----------------------------


def test_same_wall_clock_rows_select_by_pairing_group_and_list_missing_seeds(tmp_path):
    runs = []
    for seed in range(3):
        ic = _run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000}])
        gc = _run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0, "n": 50_000}])
        if seed != 2:  # IC's seed 2 has no curve: counted and listed, never "2/2"
            _curve(ic, [20 - k for k in range(10)], 0.001)
        _curve(gc, [19 - k for k in range(10)], 0.00125)
        runs += [ic, gc]
    abl = {"dropout": [0.3] * 3}
    runs.append(_run(tmp_path, "abl", "gc_dropout", 0, [{"fid": 8.0, "n": 50_000}], **abl))
    frame = tidy(runs)
    alone = same_wallclock_table(frame, frame[frame.experiment == "abl"])
    # A 4 000-step copy (twice the budget, its own pairing group) beside the 2 000-step study.
    longer = []
    for seed in range(3):
        for v, values in (("ic", [10 - k / 2 for k in range(10)]), ("gc", [5.0] * 10)):
            run = _run(tmp_path / "L", "cifar10_long", v, seed, [{"fid": 5.0, "n": 50_000}],
                       total_steps=200_000)  # fmt: skip
            _curve(run, values, 0.002 if v == "ic" else 0.0025)
            longer.append(run)
    both = tidy(runs + longer)
    table = same_wallclock_table(both, both[both.experiment == "abl"])
    assert len(table) == 1  # the ablation's group only
    pd.testing.assert_frame_equal(table, alone)
    row = table.iloc[0]
    assert row["experiment"] == "cifar10 100000 steps, batch 512"
    assert row["seeds"] == "2/3" and row["missing seeds"] == "2"


def test_a_repeated_role_is_refused_naming_the_runs(tmp_path):
    runs = []
    for seed in range(2):
        runs.append(_run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0 + seed, "n": 50_000}]))
        runs.append(_run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0, "n": 50_000}]))
        # A second IC run of the same dataset, budget and seed, in another experiment.
        runs.append(_run(tmp_path, "again", "ic", seed, [{"fid": 9.0, "n": 50_000}]))
    frame = tidy(runs)
    table = summary_table(frame[frame.experiment == "cifar10"], pool=frame).set_index("variant")
    cell = table.loc["gc", PAIRED_COLUMN]
    assert cell.startswith("refused: a role repeats") and table.loc["gc", "pairs"] == 0
    assert "again/ic" in cell and "cifar10/ic" in cell


def test_the_paired_difference_refuses_a_pair_on_different_extractors(tmp_path):
    runs = []
    for seed in range(2):
        runs.append(_run(tmp_path, "cifar10", "ic", seed, [{"fid": 7.0, "n": 50_000,
                                                            "sha": "b" * 64}]))  # fmt: skip
        runs.append(_run(tmp_path, "cifar10", "gc", seed, [{"fid": 6.0 + seed, "n": 50_000}]))
    table = summary_table(tidy(runs)).set_index("variant")
    cell = table.loc["gc", PAIRED_COLUMN]
    assert cell.startswith("refused: gc and ic were scored with different feature extractors")
    assert "cifar10/gc/s0" in cell and table.loc["gc", "ours"].startswith("6.5")


def test_a_published_cell_is_compared_with_a_prediction_interval(tmp_path):
    # GC's three seeds 5.4, 5.5, 5.6: the paper's single run, 5.95, lies outside the interval
    # of our mean (5.5 ± 0.25) but inside the prediction interval of one run, t·s·√(1 + 1/3)
    # = 4.303 × 0.1 × 1.155 ≈ 0.50: one run of ours could have given the paper's number.
    runs = [_run(tmp_path, "cifar10", "gc", s, [{"fid": 5.4 + 0.1 * s, "n": 50_000}])
            for s in range(3)]  # fmt: skip
    table = summary_table(tidy(runs)).set_index("variant")
    assert table.loc["gc", "ci95"] == pytest.approx(0.248, abs=1e-3)
    assert table.loc["gc", "paper in PI"] == "yes"
    # 5.0, 5.05, 5.1: the prediction interval is ± 0.25 and the paper is 0.9 away.
    runs = [_run(tmp_path / "b", "cifar10", "gc", s, [{"fid": 5.0 + 0.05 * s, "n": 50_000}])
            for s in range(3)]  # fmt: skip
    table = summary_table(tidy(runs)).set_index("variant")
    assert table.loc["gc", "paper in PI"] == "no"


def test_a_one_seed_band_is_a_line_labelled_as_one_seed(tmp_path):
    from gcbench.figures import _draw, _plt, band_frame

    one = pd.DataFrame({"variant": "gc", "step": [1, 2], "value": [3.0, 2.0], "seed": 0})
    bands = band_frame(one, "variant", "step")
    assert bands["lo"].isna().all() and (bands["seeds"] == 1).all()  # no zero-width band
    fig, ax = _plt().subplots()
    _draw(ax, bands)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gc (one seed)"]
    assert not ax.collections  # no fill_between
    _plt().close(fig)


def test_refusals_name_runs_by_experiment_variant_and_seed(tmp_path):
    from gcbench import selection

    run = str(tmp_path / "out" / "runs" / "digits8" / "gc" / "s2")
    assert selection.run_names([run, "by/hand"]) == "by/hand, digits8/gc/s2"


def test_the_report_shows_each_variants_last_grid_side_by_side(study):
    from gcbench import grids
    from PIL import Image

    root, runs = study
    for run in runs:
        if "ablations" not in str(run):  # cifar10 runs have pictures, the ablations none
            for step, shade in ((50_000, 10), (100_000, 200)):
                path = grids.grid_path(run, step)
                path.parent.mkdir(exist_ok=True)
                Image.fromarray(np.full((34, 34, 3), shade, np.uint8)).save(path)
    written = report(root, runs, {"cifar10": "table1", "cifar10_ablations": "table3"})
    figure = root / "figures" / "samples_cifar10.png"
    assert figure in written and Image.open(figure).size[0] > Image.open(figure).size[1]
    assert not (root / "figures" / "samples_cifar10_ablations.png").exists()
    assert grids.final_grid(runs[0]) == grids.grid_path(runs[0], 100_000)  # the last snapshot's
