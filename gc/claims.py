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
claims the paper makes for it; on the toy (Fig. 3) that is transport cost only, so its
sample-quality rows are measurements marked "not a paper claim" (`as_the_paper_claims`). Which
rows each claim reads is `selection`'s rule.

What each row measures (`measures`): "same budget" interpolates GC's curve at IC's training
seconds (`same_budget`), and the per-step cost compares the runs' logged step times, both on
the comparison's clock (`measures.clock`: CPU time on CPU runs, wall time on GPUs, named in
the row's note); "converges faster" counts the steps each coupling needs to first reach
fixed levels of IC's curve (`reach_levels`), with the mean log metric over training as a
secondary row; the transport cost is judged net of what the consistency preconditioning forces
(`transport_claims`); every difference is also set against the paper's (`effect_vs_paper`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from . import display, measures, selection, stats
from . import paper as published
from .paper import ECT_LONG, ECT_SHORT, ICT, primary
from .recipes import ECT_ENDPOINT
from .selection import Refused, with_roles
from .stats import mean_ci

VERDICT_RULE = (
    "each row's two-sided paired t-test (`p`, unadjusted) is adjusted by Holm's step-down method "
    "over the family (`p (Holm)`); **reproduced** when the adjusted p is at most 0.05 and the "
    "mean lies on the paper's side, **contradicted** when it is at most 0.05 and the mean lies on "
    "the other side, **inconclusive** otherwise or with fewer than 2 pairs (untested); "
    "**deterministic**: every pair gives the same difference (zero spread), so no test applies "
    "and no verdict is given (outside the family); **refused**: the rows may not be compared "
    "(the note names the runs and why); **descriptive**: a paper claim reported beside the row "
    "that carries its verdict, or a secondary measure, outside the family; **not a paper "
    "claim**: a difference the paper does not state, reported without a verdict and outside "
    "the family"
)
NOT_A_CLAIM = "not a paper claim"
REFUSED = "refused"
DESCRIPTIVE = "descriptive (no verdict)"
# The paper's toy (section 5.1, Fig. 3) shows transport cost only: its sample-quality results
# (final metric, convergence, same budget, ablations) and its per-step cost are on image datasets.
TRANSPORT_ONLY = ("toy2d",)
OFF_PAPER_NOTE = (
    "the paper's toy (Fig. 3) shows transport cost only, its sample-quality and cost claims are "
    "on image datasets: a measurement without a test or verdict, outside the family"
)


# ---- rows --------------------------------------------------------------------------------------


def effect_vs_paper(mean: float, half: float, paper: float | None) -> tuple[str, str]:
    """Our difference as a fraction of the paper's, with its 95% interval, and whether the
    paper's difference lies inside our interval ("" where the paper gives none)."""
    if paper is None or paper == 0 or math.isnan(mean):
        return "", ""
    if math.isnan(half):
        return f"{mean / paper:.2g}", ""
    lo, hi = sorted(((mean - half) / paper, (mean + half) / paper))
    inside = "yes" if abs(paper - mean) <= half else "no"
    return f"{mean / paper:.2g} ({lo:.2g} to {hi:.2g})", inside


def _row(
    claim,
    source,
    group,
    comparison,
    diffs,
    paper_sign,
    paper=None,
    threshold=0.0,
    percent=False,
    **kw,
):
    """One claim's row, tested alone; `claims` adjusts its p over the family and gives the
    verdict (rows passed a verdict, e.g. NOT_A_CLAIM, keep it and stay out of the family).
    `diffs` a Refused: the row is refused with its reason. `percent`: the difference is a
    ratio, shown as a percentage."""
    if isinstance(diffs, Refused):
        kw |= {"verdict": REFUSED, "note": str(diffs)}
        diffs = []
    diffs = pd.Series(diffs, dtype=float).dropna()
    mean, half, p = (float(v) for v in stats.paired_t(diffs.to_numpy(), threshold))
    fraction, inside = effect_vs_paper(mean, half, paper)
    return {
        "claim": claim,
        "source": source,
        "setting": group,
        "comparison": comparison,
        "mean": mean,
        "ci95": half,
        "measured": display.fmt(mean, half, signed=True, percent=percent),
        "pairs": len(diffs),
        "paper": display.number(paper, signed=True, percent=percent),
        "of paper": fraction,
        "paper in CI": inside,
        "p": p,
        "paper_sign": paper_sign,
        "threshold": threshold,
        "sd": float(diffs.std(ddof=1)) if len(diffs) > 1 else math.nan,
        "paper_value": math.nan if paper is None else paper,
        "percent": percent,
        **kw,
    }


def _paper_diff(dataset: str, a: str, b: str, setting: str = ICT) -> float | None:
    """The paper's FID of role a minus role b in `setting`, where it gives both."""
    fid_a, fid_b = (published.paper_value(dataset, r, setting) for r in (a, b))
    return None if fid_a is None or fid_b is None else round(fid_a - fid_b, 2)


def _diff(rows: pd.DataFrame, a: str, b: str) -> pd.Series | Refused:
    """a − b per seed, or why the pair may not be compared (the row is then refused)."""
    try:
        return selection.paired(rows, a, b)
    except Refused as why:
        return why


# ---- claims ------------------------------------------------------------------------------------


def final_claims(frame: pd.DataFrame, dataset: str, group: str) -> Iterator[dict]:
    """The iCT setting's claims on final values (Tables 1 and 3)."""
    rows = selection.headline_finals(frame, dataset)
    metric, roles = primary(dataset)[0], set(rows.role)
    shown = display.metric_name(metric)
    n = int(rows.n.max()) if not rows.empty else 0

    def row(claim, source, comparison, a, b, side, paper=None):
        r = _row(
            claim, source, group, f"final {shown}: {comparison}", _diff(rows, a, b), side, paper
        )
        return r | {"note": r.get("note") or measures.floor_note(metric, n, r["mean"])}

    if {"gc", "ic"} <= roles:
        paper = _paper_diff(dataset, "gc", "ic")
        yield row("GC ends below IC", "Table 1", "GC − IC", "gc", "ic", -1, paper)
    if {"gc", "ot"} <= roles:
        paper = _paper_diff(dataset, "gc", "ot")
        side = 1 if paper is not None and paper > 0 else -1  # LSUN: the paper has OT ahead
        claim = "GC ends below batch OT" if side < 0 else "batch OT ends below GC"
        yield row(claim, "Table 1", "GC − OT", "gc", "ot", side, paper)
    for mu_role in sorted(r for r in roles if r.startswith("gc_mu")):
        mu = float(mu_role[5:])
        if mu == 1.0 and "gc" in roles:
            yield row(
                "mu = 1 (pure GC) degrades",
                "Table 3, mu sweep",
                f"{display.method_name(mu_role)} − {display.method_name('gc')}",
                mu_role,
                "gc",
                +1,
            )
        elif 0.3 <= mu <= 0.7 and "ic" in roles:
            yield row(
                f"GC mu = {mu:g} ends below IC (mu = 0)",
                "Table 3, mu sweep",
                f"{display.method_name(mu_role)} − IC",
                mu_role,
                "ic",
                -1,
            )
    if {"gc", "gc_online"} <= roles:
        yield row(
            "the EMA endpoint beats the online one",
            "Table 3",
            "GC (EMA endpoint) − GC (online endpoint)",
            "gc",
            "gc_online",
            -1,
            _paper_diff(dataset, "gc", "gc_online"),
        )
    if {"gc", "gc_dropout"} <= roles:
        yield row(
            "dropout hurts GC",
            "Table 3",
            "GC with dropout − GC",
            "gc_dropout",
            "gc",
            +1,
            _paper_diff(dataset, "gc_dropout", "gc"),
        )


def ect_claims(frame: pd.DataFrame, dataset: str, group: str, setting: str) -> Iterator[dict]:
    """The ECT setting's claims on final values (Table 2, short or long run): GC ahead of IC,
    and, where both GC endpoint networks ran, their difference (the paper does not say which
    network ECT-GC used, so that row gets no verdict)."""
    rows = selection.headline_finals(frame, dataset)
    metric, roles = primary(dataset)[0], set(rows.role)
    source = published.paper_source(dataset, "gc", setting) or "Table 2"
    if {"gc", "ic"} <= roles:
        yield _row(
            "ECT-GC ends below ECT-IC",
            source,
            group,
            f"final {display.metric_name(metric)}: {display.method_name('gc', setting)} − ECT-IC",
            _diff(rows, "gc", "ic"),
            -1,
            _paper_diff(dataset, "gc", "ic", setting),
        )
    others = sorted(r for r in roles if r in ("gc_online", "gc_ema"))
    for other in others if "gc" in roles else []:
        diffs, endpoint = _diff(rows, "gc", other), other.removeprefix("gc_")
        yield _row(
            f"ECT-GC's endpoint network: {ECT_ENDPOINT} vs {endpoint}",
            "not in the paper (it does not say which network predicts ECT-GC's endpoint)",
            group,
            f"final {display.metric_name(metric)}: ECT-GC ({ECT_ENDPOINT} endpoint, the "
            f"default) − ECT-GC ({endpoint} endpoint)",
            diffs,
            -1,
            verdict=NOT_A_CLAIM,
            note=_sign_note(diffs, ECT_ENDPOINT, endpoint),
        )


def _sign_note(diffs: pd.Series | Refused, a: str, b: str) -> str:
    """Which side of zero the paired 95% interval of (a − b) lies on, for rows without a
    verdict (unadjusted: such rows are outside the family)."""
    if isinstance(diffs, Refused):
        return str(diffs)
    mean, half = mean_ci(diffs)
    if mean + half < 0:
        return f"the {a} endpoint ends lower (whole 95% interval below 0, unadjusted)"
    if mean - half > 0:
        return f"the {b} endpoint ends lower (whole 95% interval above 0, unadjusted)"
    return "no difference resolved (the interval spans 0, or fewer than 2 pairs)"


def curve_claims(
    frame: pd.DataFrame, dataset: str, group: str, setting: str = ICT
) -> Iterator[dict]:
    """Convergence: GC reaches IC's levels in fewer steps (the claim), its mean log metric
    over training (secondary); in iCT also GC at IC's training budget (Table 3). ECT has no
    budget claim: the paper's ECT runs are budgets, each arm its own."""
    curves = selection.headline_curves(frame, dataset)
    if curves.empty or not {"gc", "ic"} <= set(curves.role):
        return
    metric, n = primary(dataset)[0], int(curves.n.max())
    shown = display.metric_name(metric)
    gc, ic = ("ECT-GC", "ECT-IC") if setting != ICT else ("GC", "IC")
    source = "Table 2 (GC ahead after the short and the long run; the paper shows no ECT curves)"
    if setting == ICT:
        source = "Table 3, mu sweep; convergence curves"
    try:
        reach, auc = measures.reach_levels(curves, metric), measures.auc_gaps(curves)
    except Refused as why:
        reach = auc = why
    if isinstance(reach, Refused) or reach.empty:
        speed, stated = (reach if isinstance(reach, Refused) else []), "no level of IC's curve"
    else:
        ratio = np.log(reach["steps_gc"] / reach["steps_ic"])
        speed = ratio.groupby(reach["seed"]).mean()
        stated = ", ".join(f"{v:.3g}" for v in reach["level"].unique())
    floor = measures.metric_floor(metric, n)
    fractions = ", ".join(f"{f:.0%}" for f in measures.LEVEL_FRACTIONS)
    floor_text = "" if floor is None else f"; the floor at n={n} is about {floor:.2g}"
    yield _row(
        f"{gc} converges faster: fewer steps to reach {ic}'s levels",
        source,
        group,
        f"log(steps {gc} / steps {ic}) to first reach each of the levels {stated} of {shown} "
        f"(curve, n={n}; at {fractions} of {ic}'s mean log drop), averaged over the levels both "
        "reached",
        speed,
        -1,
        note="levels a run never reached are left out; a run at a level by its first snapshot "
        "counts that snapshot (an upper bound)" + floor_text,
    )
    yield _row(
        f"{gc} below {ic} over training (mean log {metric})",
        source,
        group,
        f"mean log {shown} over training (curve, n={n}): {gc} − {ic}; secondary: weighs "
        "every snapshot alike in log, so snapshots near the metric's floor count as much as "
        "early ones",
        auc,
        -1,
        verdict=DESCRIPTIVE,
        note=measures.floor_snapshots(curves, metric),
    )
    if setting != ICT:
        return
    paper = published.SAME_WALLCLOCK_FID.get(dataset)
    on = measures.budget_clock(curves)
    try:
        at_budget = measures.same_budget(curves, on)
        diffs = at_budget["gc"] - at_budget["ic"]
    except Refused as why:
        diffs = why
    yield _row(
        f"GC beats IC at IC's {on.name}",
        "Table 3 (same wall-clock as IC)",
        group,
        f"{shown} (curve, n={n}): GC at IC's {on.seconds} of training (log metric interpolated "
        f"in time between GC's two bracketing snapshots, refused if over "
        f"{measures.MAX_BRACKET:.0%} of the budget apart) − IC's last snapshot",
        diffs,
        -1,
        None if paper is None else round(paper - published.FID[dataset]["ic"], 2),
        note=f"budget: {on.note}",
    )


def as_the_paper_claims(row: dict, dataset: str) -> dict:
    """A sample-quality row as the paper makes it on `dataset`: on the toy, not a paper claim
    (no verdict, outside the family; a refusal's reason stays in the note)."""
    if dataset not in TRANSPORT_ONLY:
        return row
    reason = row.get("note")
    reason = f"refused: {reason}" if row.get("verdict") == REFUSED else reason
    notes = [OFF_PAPER_NOTE, *([reason] if isinstance(reason, str) and reason else [])]
    return row | {
        "verdict": NOT_A_CLAIM,
        "source": f"not claimed for the toy ({row['source']}: image datasets)",
        "note": "; ".join(notes),
    }


def _network_matters(rows: pd.DataFrame) -> float:
    """The sigma from which the network's term c_out·F has at least the scale of the skip
    term c_skip·(x + σz): σ ≥ σ_min + σ_data (below it the preconditioning forces the
    endpoint towards the noisy input; at σ_min, exactly)."""
    sigma_min = rows["sigma_min"].max() if "sigma_min" in rows else 0.002
    sigma_data = rows["sigma_data"].max() if "sigma_data" in rows else 0.5
    sigma_min = 0.002 if pd.isna(sigma_min) else sigma_min
    return float(sigma_min + (0.5 if pd.isna(sigma_data) else sigma_data))


def _transport_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """E‖e − z‖² per seed x sigma (rows) and coupling (columns ic, ot, gc, forced) from the GC
    runs' transport evaluations; the data points and noise are drawn per training seed and
    shared by the couplings of that seed (`evaluate.transport_cost`)."""
    rows = frame[(frame.kind == "transport") & (frame.role == "gc")]
    if rows.empty:
        return pd.DataFrame()
    selection.one_run_per_role(rows)
    cost = rows.pivot_table(index=["seed", "sigma"], columns="metric", values="value")
    return cost.rename(columns=lambda m: m.removeprefix("transport_"))


def transport_claims(frame: pd.DataFrame, group: str) -> Iterator[dict]:
    """Fig. 3: the claim is GC's transport cost below what the preconditioning alone gives
    (network output 0), at the sigmas where the network's output matters; GC − IC and GC − OT
    over every sigma are reported beside it, with the part the preconditioning forces."""
    try:
        cost = _transport_costs(frame)
    except Refused as why:
        yield _row("transport cost E‖e − z‖² is lower under GC", "Fig. 3", group, "—", why, -1)
        return
    if cost.empty or "gc" not in cost:
        return
    sigma = cost.index.get_level_values("sigma")
    start = _network_matters(frame[frame.kind == "transport"])
    matters = sigma >= start
    if "forced" in cost and matters.any():
        net = (cost["gc"] - cost["forced"])[matters]
        yield _row(
            "GC's endpoints lower the transport cost beyond what the preconditioning forces",
            "Fig. 3",
            group,
            f"mean over the {len(set(sigma[matters]))} sigmas ≥ σ_min + σ_data = {start:.3g} "
            "(where the network's term is at least the skip term's scale) of E‖e − z‖²: GC − "
            "the preconditioning alone (network output 0, e = c_skip·(x + σz))",
            net.groupby("seed").mean(),
            -1,
        )
    for other in ("ic", "ot"):
        if other not in cost:
            continue
        gap = cost["gc"] - cost[other]
        bounds = gap.groupby("sigma").apply(lambda d: sum(mean_ci(d)))
        note = f"95% interval below 0 (unadjusted) at {int((bounds < 0).sum())} of {len(bounds)}"
        note += " sigmas; "
        if "forced" in cost:
            forced = (cost["forced"] - cost[other]).groupby("seed").mean().mean()
            note += f"the preconditioning alone gives {forced:+.3g} of it (same sigmas)"
        else:
            note += "no preconditioning baseline in these evaluations (re-run the evaluation)"
        yield _row(
            f"transport cost E‖e − z‖² is lower under GC than under {other.upper()}",
            "Fig. 3",
            group,
            f"mean over {len(bounds)} sigmas of E‖e − z‖²: GC − {other.upper()} (partly forced "
            "by the preconditioning; the verdict is the row net of it)",
            gap.groupby("seed").mean(),
            -1,
            verdict=DESCRIPTIVE,
            note=note,
        )


def overhead_claims(frame: pd.DataFrame, group: str) -> Iterator[dict]:
    """GC's cost per step against IC's, from the runs' logs, on the comparison's clock (CPU
    time on CPU runs that log it: wall time there measures the neighbours too)."""
    on = measures.step_clock(frame[frame.kind == "train"])
    times = selection.step_times(frame, on.per_step)
    medians = times.groupby(["role", "seed"], as_index=False)["value"].median()
    if not {"gc", "ic"} <= set(medians.role):
        return
    medians = medians.pivot(index="seed", columns="role", values="value")
    yield _row(
        f"GC costs at most about +{published.STEP_OVERHEAD:.0%} per step",
        "Table 3 (same wall-clock as IC: about +20% per step)",
        group,
        f"median {on.seconds} per step (`{on.per_step}`): GC / IC − 1, from the runs' logs",
        medians["gc"] / medians["ic"] - 1,
        -1,
        published.STEP_OVERHEAD,
        threshold=published.STEP_OVERHEAD,
        percent=True,
        note=f"clock: {on.note}",
    )


def _groups(frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, dict[str, str]]]:
    """Each pairing group's rows, less the roles refused for repeating (and why)."""
    frame = with_roles(frame)
    for group, g in frame.groupby("group", sort=False):
        refused = selection.repeated_roles(g)
        yield str(group), g[~g.role.isin(refused)], refused


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    """Every claim the study's runs can test, one row each."""
    out = []
    for group, g, refused in _groups(frame):
        for r, why in refused.items():
            out.append(_row(f"every claim on role {r}", "", group, "—", Refused(why), -1))
        if g.empty:
            continue
        dataset, setting = g["dataset"].iloc[0], g["setting"].iloc[0]
        if setting == ICT:
            quality = [*final_claims(g, dataset, group), *curve_claims(g, dataset, group)]
            out += [as_the_paper_claims(r, dataset) for r in quality]
            out += [*transport_claims(g, group)]
            out += [as_the_paper_claims(r, dataset) for r in overhead_claims(g, group)]
        elif setting in (ECT_SHORT, ECT_LONG):
            # Only Table 2's claims: Table 1 and 3's numbers (OT, mu sweep, dropout, endpoint,
            # wall-clock, Fig. 3, +20% per step) come from iCT runs.
            out += [*ect_claims(g, dataset, group, setting)]
            out += [*curve_claims(g, dataset, group, setting)]
        # EDM pretraining (the denoiser): the paper makes no claim about it.
    return with_family_verdicts(pd.DataFrame(out, columns=[*COLUMNS, *HIDDEN]))


SEEDS_OURS, SEEDS_PAPER = "seeds to settle (our size)", "seeds to settle (paper's size)"
COLUMNS = ["claim", "source", "setting", "comparison", "measured", "pairs", "paper"]
COLUMNS += ["of paper", "paper in CI", "p", "p_holm", "verdict", SEEDS_OURS, SEEDS_PAPER]
COLUMNS += ["mean", "ci95", "note"]
# What the verdict and the seeds to settle need, not shown.
HIDDEN = ["paper_sign", "threshold", "sd", "paper_value", "percent"]
SEEDS_METHOD = (
    "`seeds to settle`, for every inconclusive row: the fewest training seeds n at which a "
    "paired difference of the measured mean (`our size`) or of the paper's difference (`paper's "
    "size`, where the paper gives one), with the measured standard deviation of the paired "
    "differences, would have a 95% t-interval clear of zero (of the threshold, for a row "
    "tested against one): t(1 − α'/2, n − 1)·s/√n < |effect|. For a row in the family, α' = "
    "0.05/m, Bonferroni's level for the family's m rows: it is sufficient under Holm's "
    "adjustment whatever the other rows do, so the count accounts for the family-wise "
    "adjustment and errs high. It is a point calculation: were the mean and spread to stay as "
    "measured, the interval would just clear zero, which a new study does at about even odds "
    "(not 80% power); `n/a`: no spread measured (fewer than 2 pairs) or no effect to find"
)


def with_family_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """The claims with the family's verdicts: every row without a preset verdict is in the
    family; Holm's adjustment over those with a p-value (2 pairs or more, some spread), then
    the one rule; zero-spread rows are deterministic and outside the adjustment."""
    table = table.astype({"verdict": object, "p": float, "p_holm": float})
    family = table["verdict"].isna()
    columns = ("mean", "p", "paper_sign", "threshold", "ci95")
    adjusted, verdicts = stats.family_verdicts(
        *(table.loc[family, c].to_numpy(float) for c in columns)
    )
    table.loc[family, "p_holm"] = adjusted
    table.loc[family, "verdict"] = verdicts
    table[SEEDS_OURS], table[SEEDS_PAPER] = "", ""
    open_rows = table["verdict"] == stats.INCONCLUSIVE
    level = stats.ALPHA / max(family_size(table), 1)  # every inconclusive row is in the family
    for i in table.index[open_rows]:
        r = table.loc[i]
        table.loc[i, SEEDS_OURS] = _seeds(r["mean"] - r["threshold"], r["sd"], level)
        if not math.isnan(r["paper_value"]):
            table.loc[i, SEEDS_PAPER] = _seeds(r["paper_value"] - r["threshold"], r["sd"], level)
    # Outside the family no test is reported; a deterministic row has no test at all.
    table["p"] = table["p"].where(family & (table["verdict"] != stats.DETERMINISTIC))
    return table[COLUMNS]


def _seeds(effect: float, sd: float, alpha: float = stats.ALPHA) -> str:
    """`stats.seeds_needed` for a reader: a count, "> cap", or n/a."""
    if math.isnan(sd) or sd == 0 or math.isnan(effect) or effect == 0:
        return display.NO_SPREAD
    n = stats.seeds_needed(effect, sd, alpha)
    return f"> {stats.SEEDS_CAP}" if n is None else str(n)


def family_size(table: pd.DataFrame) -> int:
    """Rows in the study's family that were tested (a paper claim with 2 pairs or more)."""
    return int(table["p_holm"].notna().sum())


def family_statement(table: pd.DataFrame) -> str:
    """The family, its size and the method, in words, for the head of the claims file."""
    m = family_size(table)
    untested = int((table["p_holm"].isna() & (table["verdict"] == stats.INCONCLUSIVE)).sum())
    text = (
        f"Family: the m = {m} headline claim rows of this study (one row per claim and setting) "
        f"with 2 pairs or more, tested together at a family-wise error rate of "
        f"{stats.ALPHA:.0%} (the chance of any false verdict in the study is at most "
        f"{stats.ALPHA:.0%}) by {stats.FAMILY_METHOD}"
    )
    if untested:
        text += f"; {untested} row(s) with fewer than 2 pairs are untested (inconclusive)"
    if off := int((table["verdict"] == NOT_A_CLAIM).sum()):
        text += (
            f"; {off} row(s) are measurements of what the paper does not claim there (not a "
            "paper claim: no test, no verdict, outside the family and its size)"
        )
    return text + "."


# ---- descriptive tables --------------------------------------------------------------------


def per_sigma(frame: pd.DataFrame) -> pd.DataFrame:
    """The transport costs sigma by sigma: GC − IC, GC − OT, the preconditioning alone − IC
    and GC − the preconditioning alone, paired over seeds, with unadjusted 95% intervals and
    no verdict (descriptive: the claim is the net row)."""
    out = []
    for group, g, _ in _groups(frame):
        if g.empty:
            continue
        if (g.setting != ICT).any():
            continue
        try:
            cost = _transport_costs(g)
        except Refused:
            continue  # the claims table says why
        pairs = [("gc", "ic"), ("gc", "ot"), ("forced", "ic"), ("gc", "forced")]
        names = {"forced": "preconditioning alone"}
        for a, b in (p for p in pairs if set(p) <= set(cost)):
            for sigma, d in (cost[a] - cost[b]).groupby("sigma"):
                mean, half = mean_ci(d)
                out.append(
                    {
                        "setting": group,
                        "sigma": f"{sigma:.4g}",
                        "compared": f"{names.get(a, a.upper())} − {names.get(b, b.upper())}",
                        "E‖e − z‖² difference": display.fmt(mean, half, signed=True),
                        "pairs": int(d.notna().sum()),
                    }
                )
    columns = ["setting", "sigma", "compared", "E‖e − z‖² difference", "pairs"]
    return pd.DataFrame(out, columns=columns)


def per_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """GC − IC of the headline metric at every snapshot, paired over seeds, with unadjusted 95%
    intervals and no verdict: neighbouring snapshots share runs, so a run of intervals on one
    side is weaker evidence than it looks; the claim is the single convergence row. A
    difference below the metric's floor at the curve's sample count is flagged."""
    out = []
    for group, g, _ in _groups(frame):
        if g.empty:
            continue
        dataset = g["dataset"].iloc[0]
        curves = selection.headline_curves(g, dataset)
        if curves.empty:
            continue
        n = int(curves.n.max())
        for step, at in curves.groupby("step"):
            if not {"gc", "ic"} <= set(at.role):
                continue
            try:
                diff = selection.paired(at, "gc", "ic").dropna()
            except Refused:
                continue  # the claims table says why
            mean, half = mean_ci(diff)
            out.append(
                {
                    "setting": group,
                    "step": int(step),
                    "GC − IC": display.fmt(mean, half, signed=True),
                    "pairs": len(diff),
                    # Unadjusted, as the row is: where the interval spans zero, the seeds at
                    # which one of this mean and spread would clear it.
                    SNAPSHOT_SEEDS: _seeds(mean, diff.std(ddof=1))
                    if len(diff) > 1 and abs(mean) <= half
                    else "",
                    "below floor": "yes"
                    if measures.floor_note(primary(dataset)[0], n, mean)
                    else "",
                }
            )
    columns = ["setting", "step", "GC − IC", "pairs", SNAPSHOT_SEEDS, "below floor"]
    return pd.DataFrame(out, columns=columns)


SNAPSHOT_SEEDS = "seeds for a 95% CI clear of 0"


def per_level(frame: pd.DataFrame) -> pd.DataFrame:
    """The speed measure level by level: the steps and training seconds GC and IC need to
    first reach each level of IC's curve, paired over seeds (descriptive); the seconds are on
    the same-budget row's clock (`measures.budget_clock`), named in the `clock` column."""
    out = []
    for group, g, _ in _groups(frame):
        if g.empty:
            continue
        curves = selection.headline_curves(g, g["dataset"].iloc[0])
        if curves.empty or not {"gc", "ic"} <= set(curves.role):
            continue
        on = measures.budget_clock(curves)  # the seconds on the same-budget row's clock
        try:
            reach = measures.reach_levels(curves, primary(g["dataset"].iloc[0])[0], on)
        except Refused:
            continue
        for level, r in reach.groupby("level", sort=False):
            both = r.dropna()
            out.append(
                {
                    "setting": group,
                    "level": f"{level:.4g}",
                    "steps GC − IC": display.fmt(
                        *mean_ci(both["steps_gc"] - both["steps_ic"]), signed=True
                    ),
                    "seconds GC − IC": display.fmt(
                        *mean_ci(both["seconds_gc"] - both["seconds_ic"]), signed=True
                    ),
                    "clock": on.name,
                    "pairs": len(both),
                    "not reached": len(r) - len(both),
                }
            )
    columns = ["setting", "level", "steps GC − IC", "seconds GC − IC", "clock", "pairs"]
    columns += ["not reached"]
    return pd.DataFrame(out, columns=columns)
