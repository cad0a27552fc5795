"""The paper's claims, tested on a study's runs: one row per claim with the paired difference
over training seeds, its 95% interval and a verdict.

The family: every row of `claims` that carries a paper claim (one row per claim and setting)
is tested together, at a family-wise error rate of 5%: each row's two-sided paired t-test,
Holm's step-down adjustment over the rows, and the verdict from the adjusted p (see
`stats.family_verdicts`). The per-snapshot and per-sigma tables are descriptive: differences
and unadjusted intervals, no verdict. Pairs are runs of the same dataset, training budget and
seed, so that they share initial weights, data order and noise; they may come from different
experiments of a study.

Runs are given roles from their own resolved config, never from their names: `ic`, `ot`, `gc`
(mu = 0.5, EMA endpoint, no dropout: the paper's GC), and the ablations `gc_online`,
`gc_dropout` and `gc_mu<mu>`. In the ECT setting (Table 2) `gc` is mu = 0.3 with ECT's default
endpoint network, `gc_online` / `gc_ema` the other one, and `denoiser` the EDM pretraining run
they start from. Each setting (iCT; ECT short; ECT long; EDM pretraining) is tested only on the
claims the paper makes for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from . import paper as published
from . import stats
from .paper import ECT_LONG, ECT_SHORT, EDM_PRETRAINING, ICT, primary
from .recipes import ECT_ENDPOINT, ECT_MU
from .stats import mean_ci

VERDICT_RULE = (
    "each row's two-sided paired t-test (`p`, unadjusted) is adjusted by Holm's step-down method "
    "over the family (`p (Holm)`); **reproduced** when the adjusted p is at most 0.05 and the "
    "mean lies on the paper's side, **contradicted** when it is at most 0.05 and the mean lies on "
    "the other side, **inconclusive** otherwise or with fewer than 2 pairs (untested); **not a "
    "paper claim**: a difference the paper does not state, reported without a verdict and "
    "outside the family"
)
NOT_A_CLAIM = "not a paper claim"


# ---- roles and pairs -------------------------------------------------------------------------


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
    if not math.isclose(run["mu"], 0.5):
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


def per_seed(rows: pd.DataFrame, value: str = "value") -> pd.DataFrame:
    """One value per role x seed: the first experiment's run where a role repeats."""
    return rows.drop_duplicates(["role", "seed"]).pivot(index="seed", columns="role", values=value)


def final_values(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Final headline metric (1-step, EMA, largest n) per seed x role."""
    metric, mode = primary(dataset)
    sel = frame[
        (frame.kind == "final")
        & (frame.metric == metric)
        & (frame["mode"] == mode)
        & (frame.steps == 1)
        & (frame.weights == "ema")
    ]
    return per_seed(sel[sel.n == sel.n.max()]) if not sel.empty else pd.DataFrame()


def curve_values(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Convergence-curve rows of the headline metric (one n, 1-step, EMA)."""
    metric, mode = primary(dataset)
    sel = frame[(frame.kind == "curve") & (frame.metric == metric) & (frame["mode"] == mode)]
    return sel[sel.n == sel.n.max()] if not sel.empty else sel


def log_auc(curve: pd.DataFrame) -> float:
    """Mean of log(metric) over training, trapezoidal in the fraction of training done."""
    curve = curve.sort_values("step")
    x = curve["step"].to_numpy(float) / curve["step"].max()
    y = np.log(curve["value"].to_numpy(float))
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 else math.nan


def _log_auc_gap(gc: pd.DataFrame, ic: pd.DataFrame) -> float:
    """log_auc(GC) − log_auc(IC) over the snapshots both runs have: runs that stopped at
    different steps (ECT short's wall-clock cap) are compared at matched iterations."""
    common = set(gc["step"]) & set(ic["step"])
    return log_auc(gc[gc["step"].isin(common)]) - log_auc(ic[ic["step"].isin(common)])


def unpaired_gpus(a: pd.DataFrame, b: pd.DataFrame, wallclock: bool = False) -> dict[int, str]:
    """The seeds whose runs in `a` and `b` trained on different GPUs (model or count), each
    with the refusal naming both. A second on one GPU is not a second on another, so wall-clock
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


def nearest_in_time(curve: pd.DataFrame, seconds: float) -> pd.Series:
    """The snapshot whose cumulative training seconds are nearest to `seconds`."""
    curve = curve.dropna(subset=["train_seconds"])
    return curve.loc[(curve["train_seconds"] - seconds).abs().idxmin()]


# ---- claims ----------------------------------------------------------------------------------


def _row(claim, source, group, comparison, diffs, paper_sign, paper=None, threshold=0.0, **kw):
    """One claim's row, tested alone; `claims` adjusts its p over the family and gives the
    verdict (rows passed a verdict, e.g. NOT_A_CLAIM, keep it and stay out of the family)."""
    diffs = pd.Series(diffs, dtype=float).dropna()
    mean, half, p = (float(v) for v in stats.paired_t(diffs.to_numpy(), threshold))
    return {
        "claim": claim,
        "source": source,
        "setting": group,
        "comparison": comparison,
        "mean": mean,
        "ci95": half,
        "measured": _fmt(mean, half),
        "pairs": len(diffs),
        "paper": "" if paper is None else f"{paper:+.3g}",
        "p": p,
        "paper_sign": paper_sign,
        "threshold": threshold,
        **kw,
    }


def _fmt(mean: float, half: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:+.3g}" if math.isnan(half) else f"{mean:+.3g} ± {half:.2g}"


def _paper_diff(dataset: str, a: str, b: str, setting: str = ICT) -> float | None:
    """The paper's FID of role a minus role b in `setting`, where it gives both."""
    fid_a, fid_b = (published.paper_value(dataset, r, setting) for r in (a, b))
    return None if fid_a is None or fid_b is None else round(fid_a - fid_b, 2)


def final_claims(frame: pd.DataFrame, dataset: str, group: str) -> Iterator[dict]:
    """The iCT setting's claims on final values (Tables 1 and 3)."""
    values = final_values(frame, dataset)
    metric = primary(dataset)[0]

    def has(*roles: str) -> bool:
        return all(r in values for r in roles)

    if has("gc", "ic"):
        yield _row(
            "GC ends below IC",
            "Table 1",
            group,
            f"final {metric}: GC − IC",
            values["gc"] - values["ic"],
            -1,
            _paper_diff(dataset, "gc", "ic"),
        )
    if has("gc", "ot"):
        paper = _paper_diff(dataset, "gc", "ot")
        side = 1 if paper is not None and paper > 0 else -1  # LSUN: the paper has OT ahead
        yield _row(
            "GC ends below batch OT" if side < 0 else "batch OT ends below GC",
            "Table 1",
            group,
            f"final {metric}: GC − OT",
            values["gc"] - values["ot"],
            side,
            paper,
        )
    for mu_role in sorted(r for r in values if r.startswith("gc_mu")):
        mu = float(mu_role[5:])
        if mu == 1.0 and has("gc"):
            yield _row(
                "mu = 1 (pure GC) degrades",
                "Table 3, mu sweep",
                group,
                f"final {metric}: GC mu=1 − GC mu=0.5",
                values[mu_role] - values["gc"],
                +1,
            )
        elif 0.3 <= mu <= 0.7 and has("ic"):
            yield _row(
                f"GC mu = {mu:g} ends below IC (mu = 0)",
                "Table 3, mu sweep",
                group,
                f"final {metric}: GC mu={mu:g} − IC",
                values[mu_role] - values["ic"],
                -1,
            )
    if has("gc", "gc_online"):
        yield _row(
            "the EMA endpoint beats the online one",
            "Table 3",
            group,
            f"final {metric}: GC (EMA endpoint) − GC (online endpoint)",
            values["gc"] - values["gc_online"],
            -1,
            _paper_diff(dataset, "gc", "gc_online"),
        )
    if has("gc", "gc_dropout"):
        yield _row(
            "dropout hurts GC",
            "Table 3",
            group,
            f"final {metric}: GC with dropout − GC",
            values["gc_dropout"] - values["gc"],
            +1,
            _paper_diff(dataset, "gc_dropout", "gc"),
        )


def ect_claims(frame: pd.DataFrame, dataset: str, group: str, setting: str) -> Iterator[dict]:
    """The ECT setting's claims on final values (Table 2, short or long run): GC ahead of IC,
    and, where both GC endpoint networks ran, their difference (the paper does not say which
    network ECT-GC used, so that row gets no verdict)."""
    values = final_values(frame, dataset)
    metric = primary(dataset)[0]
    source = published.paper_source(dataset, "gc", setting) or "Table 2"

    def paired(a: str, b: str) -> tuple[pd.Series, str]:
        # A wall-clock budget (ECT short's hour) pairs two arms only on the same GPUs.
        refused = unpaired_gpus(frame[frame.role == a], frame[frame.role == b])
        diffs = (values[a] - values[b]).drop(list(refused), errors="ignore")
        return diffs, "; ".join(refused.values())

    if {"gc", "ic"} <= set(values):
        diffs, refused = paired("gc", "ic")
        yield _row(
            "ECT-GC ends below ECT-IC",
            source,
            group,
            f"final {metric}: ECT-GC (mu = {ECT_MU:g}) − ECT-IC",
            diffs,
            -1,
            _paper_diff(dataset, "gc", "ic", setting),
            note=refused,
        )
    others = sorted(r for r in values if r in ("gc_online", "gc_ema"))
    for other in others if "gc" in values else []:
        (diffs, refused), endpoint = paired("gc", other), other.removeprefix("gc_")
        yield _row(
            f"ECT-GC's endpoint network: {ECT_ENDPOINT} vs {endpoint}",
            "not in the paper (it does not say which network predicts ECT-GC's endpoint)",
            group,
            f"final {metric}: ECT-GC ({ECT_ENDPOINT} endpoint, the default) − ECT-GC "
            f"({endpoint} endpoint)",
            diffs,
            -1,
            verdict=NOT_A_CLAIM,
            note="; ".join(filter(None, [_sign_note(diffs, ECT_ENDPOINT, endpoint), refused])),
        )


def _sign_note(diffs: pd.Series, a: str, b: str) -> str:
    """Which side of zero the paired 95% interval of (a − b) lies on, for rows without a
    verdict (unadjusted: such rows are outside the family)."""
    mean, half = mean_ci(diffs)
    if mean + half < 0:
        return f"the {a} endpoint ends lower (whole 95% interval below 0, unadjusted)"
    if mean - half > 0:
        return f"the {b} endpoint ends lower (whole 95% interval above 0, unadjusted)"
    return "no difference resolved (the interval spans 0, or fewer than 2 pairs)"


def curve_claims(
    frame: pd.DataFrame, dataset: str, group: str, setting: str = ICT
) -> Iterator[dict]:
    """Convergence: GC below IC over training; in iCT also at IC's wall-clock (Table 3). ECT
    has no wall-clock claim: the paper's ECT runs are budgets, each arm its own."""
    curves = curve_values(frame, dataset)
    if curves.empty or not {"gc", "ic"} <= set(curves.role):
        return
    metric, n = primary(dataset)[0], int(curves.n.max())
    by_run = {key: g for key, g in curves.groupby(["role", "seed"])}
    seeds = sorted({s for (r, s) in by_run if r == "gc"} & {s for (r, s) in by_run if r == "ic"})
    auc = {s: _log_auc_gap(by_run["gc", s], by_run["ic", s]) for s in seeds}
    if setting != ICT:
        yield _row(
            "ECT-GC converges faster: below ECT-IC at matched iterations",
            "Table 2 (GC ahead after the short and the long run; the paper shows no ECT curves)",
            group,
            f"mean log {metric} over training (curve, n={n}): ECT-GC − ECT-IC",
            auc,
            -1,
        )
        return
    yield _row(
        "GC converges faster: below IC at matched iterations",
        "Table 3, mu sweep; convergence curves",
        group,
        f"mean log {metric} over training (curve, n={n}): GC − IC",
        auc,
        -1,
    )
    at_ic_time = same_wallclock(curves)
    paper = published.SAME_WALLCLOCK_FID.get(dataset)
    yield _row(
        "GC beats IC at IC's wall-clock",
        "Table 3 (same wall-clock as IC)",
        group,
        f"{metric} (curve, n={n}): GC at its snapshot nearest IC's training seconds − IC final",
        at_ic_time["gc"] - at_ic_time["ic"],
        -1,
        None if paper is None else round(paper - published.FID[dataset]["ic"], 2),
        note="; ".join(at_ic_time["refused"].dropna()),
    )


def same_wallclock(curves: pd.DataFrame) -> pd.DataFrame:
    """Per seed: IC's final curve value and GC's value at its snapshot nearest to IC's total
    training seconds (Table 3's "same wall-clock as IC", without a shorter run whose compressed
    curriculum would make it another experiment)."""
    rows = {}
    for seed, g in curves.groupby("seed"):
        ic, gc = g[g.role == "ic"], g[g.role == "gc"]
        if ic.empty or gc.empty:
            continue
        if refused := unpaired_gpus(ic, gc, wallclock=True):
            rows[seed] = {"refused": refused[int(seed)]}
            continue
        last = ic.sort_values("step").iloc[-1]
        if pd.notna(last["train_seconds"]) and gc["train_seconds"].notna().any():
            at = nearest_in_time(gc, last["train_seconds"])
            rows[seed] = {"ic": last["value"], "gc": at["value"], "gc_step": at["step"]}
    columns = ["ic", "gc", "gc_step", "refused"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def _transport_gaps(frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """Per other coupling (IC, OT): GC's E‖e − z‖² minus its, per seed and sigma, from the GC
    runs' transport evaluations (the same data points and noise for each coupling)."""
    rows = frame[(frame.kind == "transport") & (frame.role == "gc")]
    if rows.empty:
        return
    cost = rows.pivot_table(index=["seed", "sigma"], columns="metric", values="value")
    for other in ("ic", "ot"):
        if f"transport_{other}" in cost:
            gap = cost["transport_gc"] - cost[f"transport_{other}"]
            yield other, gap.rename("diff").reset_index()


def transport_claims(frame: pd.DataFrame, group: str) -> Iterator[dict]:
    for other, diff in _transport_gaps(frame):
        # Descriptive: how many per-sigma intervals (unadjusted) lie below 0. The sigmas share
        # runs and data, so the count is no evidence beyond the row's own test.
        bounds = diff.groupby("sigma")["diff"].apply(lambda d: sum(mean_ci(d)))
        lower = int((bounds < 0).sum())
        yield _row(
            f"transport cost E‖e − z‖² is lower under GC than under {other.upper()}",
            "Fig. 3",
            group,
            f"mean over {len(bounds)} sigmas of E‖e − z‖²: GC − {other.upper()}",
            diff.groupby("seed")["diff"].mean(),
            -1,
            note=f"95% interval below 0 (unadjusted) at {lower} of {len(bounds)} sigmas",
        )


def overhead_claims(frame: pd.DataFrame, group: str) -> Iterator[dict]:
    times = frame[(frame.kind == "train") & (frame.metric == "step_time")]
    medians = per_seed(times.groupby(["role", "seed"], as_index=False)["value"].median())
    if not {"gc", "ic"} <= set(medians):
        return
    yield _row(
        f"GC costs at most about +{published.STEP_OVERHEAD:.0%} per step",
        "Table 3 (same wall-clock as IC: about +20% per step)",
        group,
        "median step time: GC / IC − 1, from the runs' logs",
        medians["gc"] / medians["ic"] - 1,
        -1,
        published.STEP_OVERHEAD,
        threshold=published.STEP_OVERHEAD,
    )


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    """Every claim the study's runs can test, one row each."""
    frame = with_roles(frame)
    out = []
    for group, g in frame.groupby("group", sort=False):
        dataset, setting = g["dataset"].iloc[0], g["setting"].iloc[0]
        if setting == ICT:
            out += [*final_claims(g, dataset, group), *curve_claims(g, dataset, group)]
            out += [*transport_claims(g, group), *overhead_claims(g, group)]
        elif setting in (ECT_SHORT, ECT_LONG):
            # Only Table 2's claims: Table 1 and 3's numbers (OT, mu sweep, dropout, endpoint,
            # wall-clock, Fig. 3, +20% per step) come from iCT runs.
            out += [*ect_claims(g, dataset, group, setting)]
            out += [*curve_claims(g, dataset, group, setting)]
        # EDM pretraining (the denoiser): the paper makes no claim about it.
    return with_family_verdicts(pd.DataFrame(out, columns=[*COLUMNS, *HIDDEN]))


COLUMNS = ["claim", "source", "setting", "comparison", "measured", "pairs", "paper"]
COLUMNS += ["p", "p_holm", "verdict", "mean", "ci95", "note"]
HIDDEN = ["paper_sign", "threshold"]  # what the verdict needs, not shown


def with_family_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """The claims with the family's verdicts: every row without a preset verdict is in the
    family; Holm's adjustment over those with a p-value (2 pairs or more), then the one rule."""
    table = table.astype({"verdict": object, "p": float, "p_holm": float})
    family = table["verdict"].isna()
    columns = ("mean", "p", "paper_sign", "threshold")
    adjusted, verdicts = stats.family_verdicts(
        *(table.loc[family, c].to_numpy(float) for c in columns)
    )
    table.loc[family, "p_holm"] = adjusted
    table.loc[family, "verdict"] = verdicts
    table.loc[~family, "p"] = np.nan  # outside the family: no test is reported
    return table[COLUMNS]


def family_size(table: pd.DataFrame) -> int:
    """Rows in the study's family that were tested (a paper claim with 2 pairs or more)."""
    return int(table["p_holm"].notna().sum())


def family_statement(table: pd.DataFrame) -> str:
    """The family, its size and the method, in words, for the head of the claims file."""
    m = family_size(table)
    untested = int((table["p_holm"].isna() & (table["verdict"] != NOT_A_CLAIM)).sum())
    text = (
        f"Family: the m = {m} headline claim rows of this study (one row per claim and setting) "
        f"with 2 pairs or more, tested together at a family-wise error rate of "
        f"{stats.ALPHA:.0%} (the chance of any false verdict in the study is at most "
        f"{stats.ALPHA:.0%}) by {stats.FAMILY_METHOD}"
    )
    if untested:
        text += f"; {untested} row(s) with fewer than 2 pairs are untested (inconclusive)"
    return text + "."


def per_sigma(frame: pd.DataFrame) -> pd.DataFrame:
    """The transport-cost claims sigma by sigma: GC − IC and GC − OT, paired over seeds, with
    unadjusted 95% intervals and no verdict (descriptive: the claim is the mean over sigmas)."""
    frame = with_roles(frame)
    out = []
    for group, g in frame[frame.setting == ICT].groupby("group", sort=False):
        for other, diff in _transport_gaps(g):
            for sigma, d in diff.groupby("sigma"):
                mean, half = mean_ci(d["diff"])
                out.append(
                    {
                        "setting": group,
                        "sigma": f"{sigma:.4g}",
                        "compared": f"GC − {other.upper()}",
                        "E‖e − z‖² difference": _fmt(mean, half),
                        "pairs": int(d["diff"].notna().sum()),
                    }
                )
    columns = ["setting", "sigma", "compared", "E‖e − z‖² difference", "pairs"]
    return pd.DataFrame(out, columns=columns)


def per_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """GC − IC of the headline metric at every snapshot, paired over seeds, with unadjusted 95%
    intervals and no verdict: neighbouring snapshots share runs, so a run of intervals on one
    side is weaker evidence than it looks; the claim is the single convergence row."""
    frame = with_roles(frame)
    out = []
    for group, g in frame.groupby("group", sort=False):
        curves = curve_values(g, g["dataset"].iloc[0])
        if curves.empty:
            continue
        for step, at in curves.groupby("step"):
            values = per_seed(at)
            if {"gc", "ic"} <= set(values):
                diff = (values["gc"] - values["ic"]).dropna()
                mean, half = mean_ci(diff)
                out.append(
                    {
                        "setting": group,
                        "step": int(step),
                        "GC − IC": _fmt(mean, half),
                        "pairs": len(diff),
                    }
                )
    return pd.DataFrame(out, columns=["setting", "step", "GC − IC", "pairs"])
