"""Which rows of the tidy table a table or a claim reads: one rule for the report and the claims.

Runs get a role, a setting and a pairing group from their own resolved config (`with_roles`).
Every selection of finals and curves filters the same protocol the same way: the headline
metric and mode, the sampling steps, the weights, one sample count (the largest present) and
one feature extractor. A role repeated within a pairing group and seed, or a pair scored with
different feature extractors, is refused with the runs named (`Refused`), never resolved by
taking the first run, pooling or averaging.
"""

from __future__ import annotations

import math

import pandas as pd

from . import layout
from .paper import ECT_LONG, ECT_SHORT, EDM_PRETRAINING, ICT, primary
from .recipes import ECT_ENDPOINT, ECT_MU, GC_MU

STEPS, WEIGHTS = 1, "ema"  # the paper's headline protocol: 1-step samples of the EMA weights


class Refused(ValueError):
    """Rows that must not be compared; the message says why and names the runs."""


# ---- roles, settings and pairing groups ------------------------------------------------------


def role(run: pd.Series) -> str:
    """What a run is, from its resolved config."""
    objective = run.get("objective", "ict")
    if objective == "edm":
        return "denoiser"  # the pretrained starting point of ECT
    if run["coupling"] != "gc":
        return str(run["coupling"])
    if objective == "ect":  # ECT-GC: mu = 0.3, dropout kept, ECT_ENDPOINT (Table 2)
        if run["endpoint"] != ECT_ENDPOINT:
            return f"gc_{run['endpoint']}"
        return "gc" if math.isclose(run["mu"], ECT_MU) else f"gc_mu{run['mu']:g}"
    if run["endpoint"] == "online":
        return "gc_online"
    if run["max_dropout"] > 0:
        return "gc_dropout"
    if not math.isclose(run["mu"], GC_MU):
        return f"gc_mu{run['mu']:g}"
    return "gc"


def setting_name(run: pd.Series) -> str:
    """The training setting: iCT (Tables 1 and 3), ECT short (stages never advance) or long
    (Table 2), or EDM pretraining (the denoiser ECT starts from)."""
    objective = run.get("objective", "ict")
    if objective == "ect":
        return ECT_SHORT if run.get("ect_stage_steps", 0) == 0 else ECT_LONG
    return EDM_PRETRAINING if objective == "edm" else ICT


def setting(run: pd.Series) -> str:
    """The setting as the head of a run's pairing group: "" for iCT, else e.g. "ECT short, "."""
    name = setting_name(run)
    return "" if name == ICT else name + ", "


def with_roles(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of runs whose config is known, with their role, setting (setting_name) and pairing
    group (dataset, setting and training budget: runs of another length or batch never pair)."""
    known = frame.dropna(subset=["coupling"])
    if known.empty:  # no run of the study has started yet
        empty = pd.Series(dtype=str)
        return known.assign(role=empty, setting=empty, group=empty)
    runs = known.drop_duplicates("run").set_index("run")
    roles = runs.apply(role, axis=1)
    settings = runs.apply(setting_name, axis=1)
    group = runs["dataset"] + " " + runs.apply(setting, axis=1)
    if "ect_q" in runs:  # ECT runs of another q never pair
        ect = runs.get("objective", pd.Series("ict", index=runs.index)) == "ect"
        group = group.where(~ect, group + "q=" + runs["ect_q"].map("{:g}".format) + ", ")
    if "max_train_seconds" in runs:  # a wall-clock cap is a budget of its own (ECT short)
        cap = runs["max_train_seconds"].fillna(0)
        group = group.where(cap <= 0, group + cap.map("{:g} s cap, ".format))
    group += runs["total_steps"].astype(int).astype(str) + " steps"
    group += ", batch " + runs["batch_size"].astype(int).astype(str)
    return known.assign(
        role=known["run"].map(roles),
        setting=known["run"].map(settings),
        group=known["run"].map(group),
    )


def annotated(frame: pd.DataFrame) -> pd.DataFrame:
    """Every row of the frame, with its run's role, setting and pairing group where the run's
    config is known (NaN where it is not: a run that never started keeps its rows)."""
    known = with_roles(frame)[["run", "role", "setting", "group"]].drop_duplicates("run")
    return frame.drop(columns=["role", "setting", "group"], errors="ignore").merge(
        known, on="run", how="left"
    )


def _run_name(run: str) -> str:
    """A run as experiment/variant/s<seed> where it is a run directory of a study's layout."""
    try:
        return str(layout.parse_run_dir(run)[1])
    except ValueError:  # not under OUTDIR/runs/ (a frame built by hand): as given
        return str(run)


def run_names(runs) -> str:
    """Runs named for a reader, sorted and deduplicated."""
    return ", ".join(sorted({_run_name(r) for r in runs}))


def repeated_roles(frame: pd.DataFrame) -> dict[str, str]:
    """Per role that more than one run plays for one seed of one pairing group: why its rows
    are refused, naming the runs (rows with a role and group, as `with_roles` gives them)."""
    runs = frame.dropna(subset=["role"]).drop_duplicates("run")
    twice = runs[runs.duplicated(["group", "role", "seed"], keep=False)]
    return {
        r: f"role {r} is played by more than one run of one seed and budget ({run_names(g.run)})"
        for r, g in twice.groupby("role")
    }


# ---- protocols ---------------------------------------------------------------------------------


def _protocol(rows: pd.DataFrame, metric: str, mode: str, steps: int, weights: str):
    return rows[
        (rows.metric == metric)
        & (rows["mode"] == mode)
        & (rows.steps == steps)
        & (rows.weights == weights)
    ]


def finals(
    frame: pd.DataFrame, metric: str, mode: str, steps: int = STEPS, weights: str = WEIGHTS
) -> pd.DataFrame:
    """Final evaluations of one metric under one sampling protocol (every sample count)."""
    return _protocol(frame[frame.kind == "final"], metric, mode, steps, weights)


def largest_n(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the largest sample count present: never two sample counts in one number."""
    return rows[rows.n == rows.n.max()] if not rows.empty else rows


def headline_finals(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The dataset's headline metric, final, 1-step, EMA, at the largest sample count."""
    return largest_n(finals(frame, *primary(dataset)))


def headline_curves(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The dataset's headline metric along training, 1-step, EMA, at the largest sample count
    (a curve scored otherwise, e.g. of the online weights, is another protocol)."""
    return largest_n(_protocol(frame[frame.kind == "curve"], *primary(dataset), STEPS, WEIGHTS))


def step_times(frame: pd.DataFrame, metric: str = "step_time") -> pd.DataFrame:
    """The training logs' per-tick step times: wall-clock (`step_time`) or CPU seconds
    (`step_cpu_time`) per step."""
    return frame[(frame.kind == "train") & (frame.metric == metric)]


def _extractors(rows: pd.DataFrame) -> pd.Series:
    if "extractor_sha256" not in rows:
        return pd.Series("", index=rows.index)
    return rows["extractor_sha256"].fillna("").astype(str)


def one_run_per_role(rows: pd.DataFrame) -> None:
    """Refused (naming the runs) where more than one run plays a role for one seed."""
    runs = rows.drop_duplicates(["role", "seed", "run"])
    twice = runs[runs.duplicated(["role", "seed"], keep=False)]
    if not twice.empty:
        raise Refused(f"a role repeats for one seed ({run_names(twice.run)})")


def per_seed(rows: pd.DataFrame, value: str = "value") -> pd.DataFrame:
    """One value per seed x role. Refused where a role has two runs for one seed."""
    one_run_per_role(rows)
    twice = rows[rows.duplicated(["role", "seed"], keep=False)]
    if not twice.empty:
        raise Refused(f"several evaluations of one run ({run_names(twice.run)})")
    return rows.pivot(index="seed", columns="role", values=value)


def paired(rows: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Per seed, role a's value minus role b's. Refused where a pair was scored with different
    feature extractors (their numbers are on different scales)."""
    values = per_seed(rows).reindex(columns=[a, b])  # a role with no rows: no pair
    extractors = per_seed(rows.assign(extractor=_extractors(rows)), "extractor")
    extractors = extractors.reindex(columns=[a, b])
    both = values[[a, b]].dropna().index
    differ = both[(extractors.loc[both, a] != extractors.loc[both, b]).to_numpy()]
    if len(differ):
        runs = rows[rows.seed.isin(differ) & rows.role.isin([a, b])].run
        raise Refused(
            f"{a} and {b} were scored with different feature extractors ({run_names(runs)})"
        )
    if gpus := unpaired_gpus(rows[rows.role == a], rows[rows.role == b]):
        raise Refused("; ".join(gpus.values()))
    return values[a] - values[b]


def unpaired_gpus(a: pd.DataFrame, b: pd.DataFrame, wallclock: bool = False) -> dict[int, str]:
    """The seeds whose runs in `a` and `b` trained on different GPUs (model or count), each
    with the reason naming both. A second on one GPU is not a second on another, so wall-clock
    comparisons (`wallclock`) and wall-clock budgets (max_train_seconds: ECT short's hour)
    never pair across them. Runs that recorded no GPU are not refused."""
    capped = [r for r in (a, b) if "max_train_seconds" in r]
    if not wallclock and not any((r["max_train_seconds"].fillna(0) > 0).any() for r in capped):
        return {}

    def gpus(rows: pd.DataFrame) -> dict[int, tuple[str, str]]:
        rows = rows.dropna(subset=["gpu"]) if "gpu" in rows else rows.iloc[:0]
        return {int(r.seed): (r.variant, f"{r.gpu_count:g} × {r.gpu}") for r in rows.itertuples()}

    ga, gb = gpus(a), gpus(b)
    return {
        s: f"seed {s} not paired: {ga[s][0]} on {ga[s][1]}, {gb[s][0]} on {gb[s][1]}"
        for s in sorted(ga.keys() & gb.keys())
        if ga[s][1] != gb[s][1]
    }
