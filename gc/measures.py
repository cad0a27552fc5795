"""What a claim measures on a study's curves, before any test: the metric's floor at a sample
count, the mean log metric over training, the steps to first reach fixed levels of IC's curve,
a curve read at another run's training seconds, and which clock those seconds are on. Curves
here are rows of one headline protocol (`selection.headline_curves`) with `role`, `seed`,
`step`, `train_seconds` (and `cpu_seconds` where logged), `value`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import selection
from .selection import Refused

# Same budget: GC's curve is interpolated between the two snapshots that bracket IC's training
# seconds; beyond a fifth of the budget apart the interpolation would span as much time as the
# +20% per-step cost the row is about, so the row is refused.
MAX_BRACKET = 0.2


# ---- clocks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """The seconds a timing comparison reads: `column` of curve rows, `per_step` the train
    metric, `name` for a claim ("wall-clock", "CPU time"), `seconds` for a comparison, `unit`
    for numbers, `note` which clock a row uses and why."""

    column: str
    per_step: str
    name: str
    seconds: str
    unit: str
    note: str


_WALL = dict(column="train_seconds", per_step="step_time", name="wall-clock")
_WALL |= dict(seconds="wall-clock seconds", unit="s")
WALL = Clock(**_WALL, note="wall-clock seconds of the training loop (`train_seconds`)")
CPU = Clock(
    column="cpu_seconds",
    per_step="step_cpu_time",
    name="CPU time",
    seconds="CPU seconds",
    unit="CPU s",
    note="CPU seconds of the training loop (`cpu_seconds`, all threads of the process): the "
    "runs trained on CPU, where wall time grows with whatever shares the cores and CPU time "
    "far less (benchmarks/cpu_time.py)",
)
CLOCK_RULE = (
    "timing rows (per-step cost, same budget) read CPU seconds of the training loop where every "
    "run of the comparison trained on CPU and logged them, and wall-clock seconds otherwise "
    "(GPUs, where a job has its device to itself; runs from before CPU time was recorded); one "
    "comparison never mixes the two, and its note says which it reads"
)


def trained_on_cpu(rows: pd.DataFrame) -> pd.Series:
    """Per run: True where it trained on CPU (recorded hardware "cpu", or config device cpu),
    False on a GPU (recorded, or config device cuda), None where neither is recorded."""
    runs = rows.drop_duplicates("run").set_index("run")
    gpu = runs["gpu"] if "gpu" in runs else pd.Series(None, index=runs.index, dtype=object)
    device = (runs["device"] if "device" in runs else pd.Series("", index=runs.index)).astype(str)
    cpu = (gpu == "cpu") | (device == "cpu")
    known = cpu | gpu.notna() | device.str.startswith("cuda")
    return cpu.astype(object).where(known, None)


def clock(rows: pd.DataFrame, logged: pd.Series) -> Clock:
    """The clock of one comparison of the runs in `rows`; `logged` says per run whether it
    logged CPU time. CPU time where every run trained on CPU and logged it; otherwise wall
    time, its note saying why (GPUs, unrecorded hardware, or the runs without CPU time)."""
    on_cpu = trained_on_cpu(rows)
    if on_cpu.empty or on_cpu.isna().any():
        return _wall("the runs' hardware is not recorded")
    if not on_cpu.any():
        return _wall("GPU runs: a job has its device to itself, the paper's measure")
    if not on_cpu.all():
        return _wall("some runs trained on a GPU, some on CPU")
    missing = [run for run in on_cpu.index if not logged.get(run, False)]
    if missing:
        return _wall(
            f"not CPU time: {selection.run_names(missing)} log no CPU time (trained before it "
            "was recorded) and a comparison never mixes clocks; on a shared CPU wall time "
            "depends on the jobs beside each run"
        )
    return CPU


def _wall(why: str) -> Clock:
    return Clock(**_WALL, note=f"{WALL.note}; {why}")


def _compared(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the runs a timing comparison reads: GC's and IC's (other roles' logs do
    not decide its clock)."""
    return rows[rows["role"].isin(["gc", "ic"])] if "role" in rows else rows


def budget_clock(curves: pd.DataFrame) -> Clock:
    """The clock of a same-budget comparison of `curves`: CPU seconds only where every snapshot
    of every run has them."""
    curves = _compared(curves)
    if "cpu_seconds" not in curves:
        return clock(curves, pd.Series(dtype=bool))
    return clock(curves, curves["cpu_seconds"].notna().groupby(curves["run"]).all())


def step_clock(train: pd.DataFrame) -> Clock:
    """The clock of a per-step comparison of the runs' training logs (`kind == "train"` rows):
    CPU time where every run logged `step_cpu_time`."""
    train = _compared(train)
    cpu = train[(train.metric == CPU.per_step) & train["value"].notna()]
    return clock(train, pd.Series(True, index=cpu["run"].unique()))


# Converges faster: the levels lie at these fractions of IC's mean log-metric drop from its
# first to its last snapshot; a level below FLOOR_MARGIN x the metric's floor is not used.
LEVEL_FRACTIONS = (0.25, 0.5, 0.75)
FLOOR_MARGIN = 2.0
FLOOR_DRAWS, FLOOR_SEED = 20, 30_000  # the floor's pairs of real draws, and their seeds
FLOOR_MISSING = {  # why a metric's floor is not estimated
    "fd_digits": "digits8 holds 359 held-out images, fewer than the evaluations' n, so no "
    "independent real sample of that size exists",
    "fid": "it needs the feature network run on two real samples of the evaluation's n, which "
    "the evaluation does not do yet",
}


@functools.cache
def metric_floor(metric: str, n: int) -> float | None:
    """The metric between two independent draws of n real points: what sampling alone gives,
    so differences below it are not resolved. Known for the toy's 2-D Fréchet distance (mean
    over FLOOR_DRAWS pairs of fresh draws); None (not estimated, `FLOOR_MISSING` says why) for
    the others."""
    if metric != "frechet_2d":
        return None
    from .data import toy2d  # torch: only where a toy floor is asked for
    from .metrics import frechet_2d

    draws = [toy2d(n, seed=FLOOR_SEED + k).numpy() for k in range(2 * FLOOR_DRAWS)]
    return float(np.mean([frechet_2d(a, b) for a, b in zip(draws[::2], draws[1::2], strict=True)]))


def floor_note(metric: str, n: int, mean: float) -> str:
    floor = metric_floor(metric, n)
    if floor is None or math.isnan(mean) or abs(mean) >= floor:
        return ""
    return f"|difference| below the metric's floor at n={n} (about {floor:.2g}): not resolved"


def log_auc(curve: pd.DataFrame) -> float:
    """Mean of log(metric) over training, trapezoidal in the fraction of training done."""
    curve = curve.sort_values("step")
    x = curve["step"].to_numpy(float) / curve["step"].max()
    y = np.log(curve["value"].to_numpy(float))
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 else math.nan


def log_auc_gap(gc: pd.DataFrame, ic: pd.DataFrame) -> float:
    """log_auc(GC) − log_auc(IC) over the snapshots both runs have: runs that stopped at
    different steps (ECT short's wall-clock cap) are compared at matched iterations."""
    common = set(gc["step"]) & set(ic["step"])
    return log_auc(gc[gc["step"].isin(common)]) - log_auc(ic[ic["step"].isin(common)])


def curves_by_run(curves: pd.DataFrame) -> dict[tuple[str, int], pd.DataFrame]:
    """Each (role, seed)'s curve, sorted by step; refused where a role repeats for a seed."""
    selection.one_run_per_role(curves)
    return {key: g.sort_values("step") for key, g in curves.groupby(["role", "seed"])}


def levels(curves: pd.DataFrame, metric: str) -> list[float]:
    """The fixed levels of the speed measure: IC's mean log curve over seeds, at
    LEVEL_FRACTIONS of its drop from the first to the last snapshot; levels within
    FLOOR_MARGIN of the metric's floor are left out (there the curve is sampling noise)."""
    ic = curves[curves.role == "ic"]
    mean_log = np.log(ic["value"].astype(float)).groupby(ic["step"]).mean().sort_index()
    if len(mean_log) < 2:
        return []
    first, last = mean_log.iloc[0], mean_log.iloc[-1]
    out = [float(np.exp(first + f * (last - first))) for f in LEVEL_FRACTIONS]
    floor = metric_floor(metric, int(curves.n.max()))
    return [v for v in out if floor is None or v > FLOOR_MARGIN * floor]


def first_reach(curve: pd.DataFrame, level: float, on: Clock = WALL) -> tuple[float, float]:
    """Steps and training seconds (of clock `on`) at which a curve first reaches `level`:
    interpolated in log metric between the snapshots either side of the crossing; a curve
    already at the level at its first snapshot counts that snapshot (the crossing lies before
    it); (nan, nan) if never."""
    curve = curve.sort_values("step")
    logs = np.log(curve["value"].to_numpy(float))
    steps = curve["step"].to_numpy(float)
    seconds = curve[on.column].to_numpy(float)
    below = np.flatnonzero(logs <= math.log(level))
    if not len(below):
        return math.nan, math.nan
    i = below[0]
    if i == 0:
        return steps[0], seconds[0]
    w = (math.log(level) - logs[i - 1]) / (logs[i] - logs[i - 1])
    return (
        steps[i - 1] + w * (steps[i] - steps[i - 1]),
        seconds[i - 1] + w * (seconds[i] - seconds[i - 1]),
    )


def reach_levels(curves: pd.DataFrame, metric: str, on: Clock = WALL) -> pd.DataFrame:
    """Per seed and level: the steps and seconds (of clock `on`) GC and IC need to first reach
    it (columns steps_gc, steps_ic, seconds_gc, seconds_ic; nan where a run never reached it)."""
    by_run, rows = curves_by_run(curves), []
    seeds = sorted({s for (r, s) in by_run if r == "gc"} & {s for (r, s) in by_run if r == "ic"})
    for level in levels(curves, metric):
        for seed in seeds:
            row = {"level": level, "seed": seed}
            for r in ("gc", "ic"):
                row[f"steps_{r}"], row[f"seconds_{r}"] = first_reach(by_run[r, seed], level, on)
            rows.append(row)
    columns = ["level", "seed", "steps_gc", "seconds_gc", "steps_ic", "seconds_ic"]
    return pd.DataFrame(rows, columns=columns)


def value_at_seconds(curve: pd.DataFrame, seconds: float, on: Clock = WALL) -> tuple[float, float]:
    """A curve's value and step at `seconds` of training on clock `on`: log metric interpolated
    linearly in time between the two snapshots that bracket it. Refused where no snapshot lies
    on one side or the two lie more than MAX_BRACKET of `seconds` apart."""
    curve = curve.dropna(subset=[on.column]).sort_values(on.column)
    t, unit = curve[on.column], on.unit
    before, after = curve[t <= seconds], curve[t >= seconds]
    if after.empty or before.empty:
        side = "ends" if after.empty else "starts"
        edge = t.max() if after.empty else t.min()
        raise Refused(f"it {side} at {edge:.3g} {unit}, IC's budget is {seconds:.3g} {unit}")
    lo, hi = before.iloc[-1], after.iloc[0]
    width = hi[on.column] - lo[on.column]
    if width > MAX_BRACKET * seconds:
        raise Refused(
            f"the snapshots at steps {int(lo['step'])} and {int(hi['step'])} bracketing IC's "
            f"{seconds:.3g} {unit} are {width:.3g} {unit} apart, more than {MAX_BRACKET:.0%} of it"
        )
    if (curve["value"] <= 0).any():
        raise Refused("a value is not positive: no log interpolation")
    w = 0.0 if width == 0 else (seconds - lo[on.column]) / width
    value = math.exp((1 - w) * math.log(lo["value"]) + w * math.log(hi["value"]))
    return value, lo["step"] + w * (hi["step"] - lo["step"])


def same_budget(curves: pd.DataFrame, on: Clock | None = None) -> pd.DataFrame:
    """Per seed: IC's last curve value, its training seconds on clock `on` (the budget; default
    `budget_clock(curves)`) and GC's value interpolated at exactly that budget
    (`value_at_seconds`), with GC's fractional step there. Refused, naming the seeds and the
    reason, where any seed's GC curve cannot be read at IC's budget: a row never mixes
    interpolated and refused seeds. Table 3's same-budget row and the claim both call this."""
    on = budget_clock(curves) if on is None else on
    by_run, rows, refused = curves_by_run(curves), {}, []
    for (r, seed), ic in by_run.items():
        if r != "ic" or ("gc", seed) not in by_run or ic[on.column].isna().all():
            continue
        if gpus := selection.unpaired_gpus(ic, by_run["gc", seed], wallclock=True):
            refused += gpus.values()  # a second on one GPU model is not one on another
            continue
        last = ic.dropna(subset=[on.column]).iloc[-1]
        try:
            value, step = value_at_seconds(by_run["gc", seed], last[on.column], on)
        except Refused as why:
            refused.append(f"seed {seed}, GC's curve: {why}")
            continue
        rows[seed] = {"ic": last["value"], "gc": value, "gc_step": step, "budget": last[on.column]}
    if refused:
        raise Refused("; ".join(refused))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ic", "gc", "gc_step", "budget"])


def auc_gaps(curves: pd.DataFrame) -> dict:
    by_run = curves_by_run(curves)
    seeds = sorted({s for (r, s) in by_run if r == "gc"} & {s for (r, s) in by_run if r == "ic"})
    return {s: log_auc_gap(by_run["gc", s], by_run["ic", s]) for s in seeds}


def floor_snapshots(curves: pd.DataFrame, metric: str) -> str:
    """How many snapshots have IC's mean within FLOOR_MARGIN of the metric's floor."""
    floor = metric_floor(metric, int(curves.n.max()))
    if floor is None:
        return f"floor of {metric} not estimated: {FLOOR_MISSING.get(metric, FLOOR_MISSING['fid'])}"
    ic = curves[curves.role == "ic"].groupby("step")["value"].mean()
    near = int((ic <= FLOOR_MARGIN * floor).sum())
    return f"{near} of {len(ic)} snapshots have IC within {FLOOR_MARGIN:g}x the floor ({floor:.2g})"
