"""Reports: one tidy long table of every run, then paper-style tables and figures from it.

The tidy table has one row per run x step x metric (plus the run's meta columns); tables and
curves are computed from it as data frames first and drawn second. Expected runs that are
missing or failed appear as rows with status "missing": they are counted and shown, never
averaged away.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from . import checkpoint, claims, display, figures, layout, measures, selection
from . import paper as published
from .paper import ICT, primary
from .recipes import upgrade_config
from .selection import Refused
from .stats import mean_ci, prediction_half

KEYS = [
    *("experiment", "variant", "seed", "kind", "step", "metric", "mode", "steps", "weights"),
    *("n", "eval_seed"),
]


# ---- the tidy table -----------------------------------------------------------------------------


def _run_meta(run_dir: Path) -> dict:
    run = layout.parse_run_dir(run_dir)[1]
    meta = {"experiment": run.experiment, "variant": run.variant, "seed": run.seed}
    meta["run"] = str(run_dir)
    config_path = run_dir / "config.json"
    if config_path.exists():
        c = upgrade_config(checkpoint.read_json(config_path))
        meta |= {
            "dataset": c["dataset"],
            "coupling": c["coupling"],
            "mu": c["mu"],
            "endpoint": c.get("endpoint", "ema"),
            "max_dropout": max(c.get("dropout", [0.0])),
            "total_steps": c.get("total_steps", 0),
            "batch_size": c.get("batch_size", 0),
            "objective": c.get("objective", "ict"),
            "ect_stage_steps": c.get("ect_stage_steps", 0),
            "ect_q": c.get("ect_q", 2.0),
            "max_train_seconds": c.get("max_train_seconds", 0.0),
            # Where the network's output starts to matter (claims._network_matters).
            "sigma_min": c.get("sigma_min", 0.002),
            "sigma_data": c.get("sigma_data", 0.5),
            # Where it trained, beside the recorded hardware (measures.trained_on_cpu).
            "device": c.get("device", "auto"),
        }
    return meta | checkpoint.run_hardware(run_dir)


def run_rows(run_dir: Path) -> list[dict]:
    """Every number one run produced, as tidy rows; one 'missing' row if it has none."""
    meta = _run_meta(run_dir)
    logged = checkpoint.read_metrics(run_dir)
    seconds = {r["step"]: r["train_seconds"] for r in logged}
    cpu = checkpoint.cpu_seconds(logged)  # empty: the run logs no (or not all) CPU time
    rows = []
    for r in logged:
        # step_cpu_time only where logged: older runs have no row rather than a NaN one.
        for metric in ("loss", "step_time", "step_cpu_time"):
            if metric not in r:
                continue
            rows.append(
                meta
                | {
                    "kind": "train",
                    "step": r["step"],
                    "train_seconds": r["train_seconds"],
                    "cpu_seconds": cpu.get(r["step"]),
                    "metric": metric,
                    "value": r[metric],
                }
            )
    final = run_dir / "eval" / "final.json"
    for record in json.loads(final.read_text()) if final.exists() else []:
        step = record["snapshot_step"]
        for m in record["metrics"]:
            rows.append(
                meta
                | {
                    "kind": "final",
                    "step": step,
                    "train_seconds": seconds.get(step),
                    "cpu_seconds": cpu.get(step),
                    "metric": m["metric"],
                    "mode": m.get("mode", ""),
                    "value": m["value"],
                    "steps": record["sampling"]["steps"],
                    "weights": record["sampling"]["weights"],
                    "n": record["sampling"]["n"],
                    "eval_seed": record["sampling"].get("seed", 0),
                    "extractor_sha256": m.get("extractor_sha256", ""),
                }
            )
        for t in record.get("transport_cost", []):
            rows.append(
                meta
                | {
                    "kind": "transport",
                    "step": step,
                    "metric": f"transport_{t['coupling']}",
                    "sigma": t["sigma"],
                    "value": t["transport_cost"],
                }
            )
    curve = run_dir / "eval" / "curve.csv"
    if curve.exists() and curve.stat().st_size:
        for r in pd.read_csv(curve, dtype={"mode": str}).fillna({"mode": ""}).to_dict("records"):
            rows.append(
                meta
                | {
                    "kind": "curve",
                    "step": r["step"],
                    "train_seconds": r["train_seconds"],
                    # Curves evaluated before it was recorded: the training log's, if whole.
                    "cpu_seconds": _known(r.get("cpu_seconds"), cpu.get(r["step"])),
                    "metric": r["metric"],
                    "mode": r["mode"],
                    "value": r["value"],
                    "steps": r["steps"],
                    "weights": r["weights"],
                    "n": r["n"],
                }
            )
    done = (run_dir / "done.json").exists() and final.exists()
    if not rows or not done:
        rows.append(meta | {"kind": "status", "metric": "missing", "value": np.nan})
    return rows


def _known(value, fallback):
    """`value` unless it is missing (None or NaN, as an empty CSV cell reads)."""
    return fallback if value is None or pd.isna(value) else value


def tidy(run_dirs: list[Path]) -> pd.DataFrame:
    frame = pd.DataFrame([row for d in run_dirs for row in run_rows(Path(d))])
    for column in (
        "mode",
        "steps",
        "weights",
        "step",
        "dataset",
        "coupling",
        "mu",
        "sigma",
        "n",
        "eval_seed",
        "extractor_sha256",
        "train_seconds",
        "cpu_seconds",
    ):
        if column not in frame:
            frame[column] = np.nan
    frame["mode"] = frame["mode"].fillna("")
    frame["extractor_sha256"] = frame["extractor_sha256"].fillna("")
    return frame.drop_duplicates(subset=[*KEYS, "sigma"], keep="last")


# ---- tables --------------------------------------------------------------------------------------


def _names(runs: Iterable[str]) -> str:
    """Runs as experiment/variant/s<seed>, sorted: where a refused cell points the reader."""
    return ", ".join(sorted({str(layout.parse_run_dir(r)[1]) for r in runs}))


def _per_seed(rows: pd.DataFrame) -> tuple[pd.Series, str]:
    """One value per seed, or an empty series and why the rows may not be averaged: they must
    share one sample count and one feature extractor, one evaluation per run."""
    for column, what in (("n", "sample count"), ("extractor_sha256", "feature extractor")):
        if rows[column].nunique() > 1:
            kinds = rows.groupby(column)["run"].apply(_names)
            listed = "; ".join(f"{str(k)[:12]}: {v}" for k, v in kinds.items())
            return pd.Series(dtype=float), f"not averaged: {what} differs ({listed})"
    repeated = rows[rows.duplicated("seed", keep=False)]
    if not repeated.empty:
        return pd.Series(dtype=float), (
            "not averaged: several evaluations of one run (" + _names(repeated.run) + ")"
        )
    return rows.set_index("seed")["value"], ""


def _per_seed_at(rows: pd.DataFrame, n: float) -> tuple[pd.Series, str]:
    """`_per_seed` of the rows scored on n samples; refused, naming the runs, where a run of
    the cell was scored only on another sample count (it must not pass as a missing seed)."""
    at_n = rows[rows.n == n]
    elsewhere = rows[~rows.run.isin(at_n.run)]
    if not elsewhere.empty:
        listed = "; ".join(f"n={k:g}: {_names(v)}" for k, v in elsewhere.groupby("n")["run"])
        return pd.Series(dtype=float), (
            f"not averaged: sample count differs from the table's n={n:g} ({listed})"
        )
    return _per_seed(at_n)


def _first(rows: pd.DataFrame, column: str, default: str = "") -> str:
    known = rows[column].dropna()
    return known.iloc[0] if not known.empty else default


def _seed_cell(rows: pd.DataFrame, n: float) -> dict:
    """Mean and 95% half-width over seeds of `rows` scored on n samples, the seeds that
    count, and why not where they may not be averaged."""
    per_seed, refused = _per_seed_at(rows, n)
    mean, half = mean_ci(per_seed)
    return {"per_seed": per_seed, "mean": mean, "ci95": half, "refused": refused}


def summary_cells(
    frame: pd.DataFrame,
    steps: int = selection.STEPS,
    weights: str = selection.WEIGHTS,
    pool: pd.DataFrame | None = None,
) -> list[dict]:
    """The numbers of `summary_table`, one dict per experiment x variant, unformatted: the
    protocol, the headline metric's cell (and KID, IS), the paper's value for the run's role and
    setting (1-step only: the paper reports no other), and the paired difference to IC: the IC
    run of the same pairing group and seed, from any experiment of `pool` (default `frame`)."""
    frame = selection.annotated(frame)
    pool = frame if pool is None else selection.annotated(pool)
    out = []
    for (experiment, variant), group in frame.groupby(["experiment", "variant"], sort=False):
        dataset = _first(group, "dataset")
        metric, mode = primary(dataset)
        same_table = frame[frame.experiment == experiment]
        n = selection.finals(same_table, metric, mode, steps, weights)["n"].max()
        sel = selection.finals(group, metric, mode, steps, weights)
        role, setting = _first(group, "role"), _first(group, "setting", ICT)
        cell = {"experiment": experiment, "variant": variant, "dataset": dataset, "role": role}
        cell |= {"setting": setting, "setting_known": group["setting"].notna().any()}
        cell |= {"metric": metric, "mode": mode, "steps": steps, "weights": weights, "n": n}
        cell |= {"finished": not sel.empty, "expected": sorted(group["seed"].unique())}
        cell |= {"reached": sorted(sel[sel.n == n]["step"].dropna().astype(int).unique())}
        cell |= {"headline": _seed_cell(sel, n)}
        cell["paper"] = published.paper_value(dataset, role, setting) if steps == 1 else None
        cell["paper_source"] = published.paper_source(dataset, role, setting)
        cell["paired"], cell["paired_refused"] = _paired_to_ic(
            pool, sel[sel.n == n], group, role, (metric, mode, steps, weights, n)
        )
        cell["extra"] = {}  # KID×10² (clean-mode features) and IS, beside Table 1's
        for name, extra, extra_mode, scale, key in _EXTRA:
            rows = selection.finals(group, extra, extra_mode, steps, weights)
            paper = published.paper_value(dataset, role, setting, key)
            extra_cell = _seed_cell(rows, n)
            extra_cell |= {"mean": extra_cell["mean"] * scale, "ci95": extra_cell["ci95"] * scale}
            cell["extra"][name] = extra_cell | {"paper": paper if steps == 1 else None}
        out.append(cell)
    return out


_EXTRA = (  # (column, metric, mode, scale, paper key): beside the headline metric, FID datasets
    ("KID×10²", "kid", "clean", 100, "kid_x100"),
    ("IS", "inception_score", "", 1, "inception_score"),
)


def _paired_to_ic(
    pool: pd.DataFrame, sel: pd.DataFrame, group: pd.DataFrame, role: str, protocol: tuple
) -> tuple[pd.Series, str]:
    """Per seed, this variant's value minus IC's of the same pairing group and protocol, and
    why not where selection refuses the pair (IC once per seed, one feature extractor)."""
    if not role or role in ("ic", "denoiser") or sel.empty:  # no IC arm to pair with
        return pd.Series(dtype=float), ""
    metric, mode, steps, weights, n = protocol
    base = selection.finals(pool, metric, mode, steps, weights)
    base = base[(base.role == "ic") & (base.group == _first(group, "group")) & (base.n == n)]
    try:
        return selection.paired(pd.concat([sel, base]), role, "ic").dropna(), ""
    except Refused as why:
        return pd.Series(dtype=float), f"refused: {why}"


PAIRED_COLUMN = "paired Δ vs IC (same dataset, budget, seed)"


def _metric_label(cell: dict) -> str:
    """What a cell averages: the metric with its direction, mode, steps, sample count, weights."""
    if not cell["finished"]:
        return "— (no finished run)"
    mode = cell["mode"] + ", " if cell["mode"] else ""
    weights = {"ema": "EMA"}.get(cell["weights"], cell["weights"])
    return (
        f"{display.metric_name(cell['metric'])} ({mode}{cell['steps']}-step, n={cell['n']:g}, "
        f"{weights})"
    )


def format_cells(cells: list[dict], settings: bool, image: bool) -> pd.DataFrame:
    """`summary_cells` as the table a reader sees: display names, the rounding rule of
    `display.fmt`, the gap to the paper and whether the paper lies in our prediction interval
    (only at the paper's 50k samples); `settings` adds the ECT setting columns, `image` KID and
    IS beside the paper's."""
    out = []
    for cell in cells:
        head, paper, n = cell["headline"], cell["paper"], cell["n"]
        per_seed = head["per_seed"].dropna()
        at_protocol = paper is not None and n == published.FID_SAMPLES
        row = {"experiment": cell["experiment"], "variant": cell["variant"]}
        row["method"] = display.method_name(cell["role"], cell["setting"])
        if settings:
            row["setting"] = cell["setting"] if cell["setting_known"] else ""
            # Where a run stopped: ECT short's wall-clock cap can end the arms at other steps.
            reached = cell["reached"]
            row["final step"] = (
                "–".join(map(str, sorted({reached[0], reached[-1]}))) if reached else ""
            )
        row |= {
            "metric": _metric_label(cell),
            "ours": head["refused"] or display.fmt(head["mean"], head["ci95"]),
            "mean": head["mean"],
            "ci95": head["ci95"],
            "seeds": f"{len(per_seed)}/{len(cell['expected'])}",
            "paper": paper,
        }
        if settings:
            row["paper source"] = cell["paper_source"] if paper is not None else ""
        paired = cell["paired"]
        row |= {
            # The paper's FIDs are over 50k samples: no gap against another sample count.
            "gap": round(head["mean"] - paper, 2)
            if at_protocol and not math.isnan(head["mean"])
            else None,
            "paper in PI": _inside_prediction(per_seed, paper) if at_protocol else "",
            PAIRED_COLUMN: cell["paired_refused"] or display.fmt(*mean_ci(paired), signed=True),
            "pairs": len(paired),
            "missing seeds": ", ".join(str(s) for s in cell["expected"] if s not in per_seed.index),
        }
        if image:
            for name, extra in cell["extra"].items():
                row[name] = extra["refused"] or display.fmt(extra["mean"], extra["ci95"])
                row[f"paper {name}"] = extra["paper"]
        out.append(row)
    return pd.DataFrame(out)


def summary_table(
    frame: pd.DataFrame,
    steps: int = selection.STEPS,
    weights: str = selection.WEIGHTS,
    pool: pd.DataFrame | None = None,
    settings: bool | None = None,
) -> pd.DataFrame:
    """Per experiment x variant: the headline metric's mean ± 95% CI over seeds, completed
    seeds, the paper's value and the gap, and the paired difference to IC (`summary_cells`,
    formatted by `format_cells`). KID×10² and IS beside the paper's for FID datasets.
    `settings` (default: where any run is not iCT) adds the columns `setting` (ECT short /
    long, EDM pretraining), `final step` and `paper source`."""
    cells = summary_cells(frame, steps, weights, pool)
    if settings is None:
        settings = any(c["setting"] != ICT for c in cells if c["setting_known"])
    image = bool(set(frame["dataset"].dropna()) - set(published.PRIMARY_OTHER))
    return format_cells(cells, settings, image)


def _inside_prediction(values: pd.Series, paper: float) -> str:
    """Whether the paper's single number lies in the 95% prediction interval of one run
    (t·s·√(1 + 1/n)): a published cell is one run, not a mean over our seeds."""
    half = prediction_half(values)
    if math.isnan(half):
        return ""
    return "yes" if abs(values.mean() - paper) <= half else "no"


def same_wallclock_table(frame: pd.DataFrame, ablations: pd.DataFrame) -> pd.DataFrame:
    """Table 3's "same wall-clock as IC" row per iCT pairing group (dataset, budget) of the
    ablations: GC (mu = 0.5) at IC's training seconds, interpolated between GC's bracketing
    snapshots by `measures.same_budget` (the claim's own function and clock: CPU seconds on CPU
    runs that log them, named in the row), on the curve's protocol.
    `seeds` counts the group's runs; a seed without both curves is listed as missing."""
    out = []
    known = selection.with_roles(frame)
    known = known[known.setting == ICT]  # Table 3 is iCT's: ECT runs of a dataset stay out
    wanted = set(selection.with_roles(ablations)["group"].dropna())
    for budget, g in known[known.group.isin(wanted)].groupby("group", sort=False):
        dataset = g["dataset"].iloc[0]
        refused = {r: why for r, why in selection.repeated_roles(g).items() if r in ("gc", "ic")}
        curves = selection.headline_curves(g, dataset)
        if curves.empty or not {"gc", "ic"} <= set(curves.role):
            continue
        expected = sorted(g.loc[g.role.isin(["gc", "ic"]), "seed"].unique())
        n = curves.n.max()  # the paper's value is at 50k samples: no gap across protocols
        on = measures.budget_clock(curves)  # the claim's clock: CPU time on CPU runs
        try:
            if refused:  # never resolved by taking one of the runs
                raise Refused("; ".join(refused.values()))
            per_seed = measures.same_budget(curves, on)
            why = ""
        except Refused as reason:
            per_seed, why = pd.DataFrame(columns=["ic", "gc", "gc_step", "budget"]), str(reason)
        mean, half = mean_ci(per_seed["gc"])
        paired = per_seed["gc"] - per_seed["ic"]
        paper = published.SAME_WALLCLOCK_FID.get(dataset)
        comparable = paper is not None and n == published.FID_SAMPLES and not why
        steps = ", ".join(f"{s:.0f}" for s in per_seed["gc_step"])
        out.append(
            {
                "experiment": budget,
                "variant": f"gc at IC's {on.name}",
                "method": f"{display.method_name('gc')} at IC's {on.name}",
                "metric": f"{display.metric_name(primary(dataset)[0])} (curve: 1-step, n={n:g}, EMA; GC "
                f"interpolated at IC's {on.seconds} of training: steps ≈ {steps or '—'})",
                "ours": f"refused: {why}" if why else display.fmt(mean, half),
                "mean": mean,
                "ci95": half,
                "seeds": f"{len(per_seed)}/{len(expected)}",
                "paper": paper,
                "gap": round(mean - paper, 2) if comparable else None,
                "paper in PI": _inside_prediction(per_seed["gc"], paper) if comparable else "",
                PAIRED_COLUMN: display.fmt(*mean_ci(paired), signed=True),
                "pairs": len(paired),
                "missing seeds": ", ".join(str(s) for s in expected if s not in per_seed.index),
            }
        )
    return pd.DataFrame(out)


_CAPTIONS = {  # table name -> what it is, for the .tex caption
    "table1": "Headline metric per method (the paper's Table 1)",
    "table2": "ECT fine-tuning of a pretrained EDM denoiser, IC vs GC (the paper's Table 2)",
    "table3": "Ablations of GC (the paper's Table 3)",
    "mu_sweep": "GC for each mu (the paper's Table 3, mu sweep)",
    "toy": "The 2-D toy (the paper's Fig. 3 shows its transport cost only: these sample-quality "
    "numbers are measurements, not paper claims)",
}
# The columns a paper shows, renamed; the rest (run names, missing seeds) stay in .md and .csv.
_TEX_COLUMNS = {
    "experiment": "experiment",
    "method": "method",
    "setting": "setting",
    "final step": "final step",
    "metric": "metric",
    "ours": "ours",
    "seeds": "seeds",
    "paper": "paper",
    "gap": "gap",
    PAIRED_COLUMN: "Δ vs IC (paired)",
    "pairs": "pairs",
    "KID×10²": "KID×10² ↓",
    "paper KID×10²": "paper KID×10²",
    "IS": "IS ↑",
    "paper IS": "paper IS",
}


_TEX_CELL = 32  # characters; a longer text cell is a note under the caption


def tex_table(shown: pd.DataFrame, name: str, label: str) -> str:
    """A table as a complete booktabs float for a paper: its paper columns, none that is empty
    throughout; an experiment that is the same in every row, and each metric's full protocol,
    said once in the caption, with the metric's short name (FID ↓) in the rows where it
    varies."""
    kind = next((k for k in _CAPTIONS if name.startswith(k)), "table1")
    variant = name.removeprefix(kind).lstrip("_").replace("_", ", ")
    shown = shown.copy()
    columns = [c for c in _TEX_COLUMNS if c in shown and (shown[c].astype(str) != "").any()]
    caption = _CAPTIONS[kind] + (f" ({variant})" if variant else "") + ". "
    if "experiment" in columns and shown["experiment"].nunique() == 1:
        caption += f"Experiment: {shown['experiment'].iloc[0]}. "
        columns.remove("experiment")
    if "metric" in columns:
        labels = shown["metric"].astype(str)
        common = max(labels.unique(), key=lambda m: (labels == m).sum())  # ties: the first
        caption += f"Metric: {common}"
        for method, other in zip(shown["method"], labels, strict=True):
            caption += "" if other == common else f"; {method}: {other}"
        caption += ". "
        if labels.nunique() == 1:
            columns.remove("metric")
        else:  # the rows keep the short name only
            shown["metric"] = labels.str.split(" (", n=1, regex=False).str[0]
    caption += (
        "Ours: mean ± half-width of the 95% t-interval over training seeds (n/a: one seed or no "
        "spread); seeds: completed/expected; Δ vs IC: the same over the paired differences to "
        "IC of the same dataset, budget and seed; paper: the paper's value, gap: ours − paper."
    )
    if not columns:  # a study where no run finished still gets a table that compiles
        return display.latex_table(["table"], [["no finished run"]], caption, label)
    rows = shown[columns].astype(str).to_numpy().tolist()
    # A sentence in a cell (a refusal naming runs) would set the table's width: a mark in the
    # cell, the sentence in the caption.
    notes: list[str] = []
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > _TEX_CELL and not cell[:1].isdigit():
                notes += [cell] if cell not in notes else []
                row[i] = f"note {notes.index(cell) + 1}"
    caption += "".join(f" Note {k}: {text}." for k, text in enumerate(notes, start=1))
    return display.latex_table([_TEX_COLUMNS[c] for c in columns], rows, caption, label)


def write_tables(table: pd.DataFrame, folder: Path, name: str) -> None:
    """`name`.md, .tex (a booktabs float labelled tab:<study>-<name>), .html and .csv."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = table.drop(columns=["mean", "ci95"], errors="ignore").astype(object).fillna("")
    (folder / f"{name}.md").write_text(_markdown(shown) + "\n")
    label = f"tab:{folder.parent.name}-{name}"
    (folder / f"{name}.tex").write_text(tex_table(shown, name, label))
    (folder / f"{name}.html").write_text(_html(name, shown))
    table.to_csv(folder / f"{name}.csv", index=False)


def _markdown(shown: pd.DataFrame) -> str:
    """A GitHub Markdown table whose cells cannot break it (a `|` in a note is escaped)."""
    escaped = shown.astype(object).map(
        lambda v: display.markdown_cell(v) if isinstance(v, str) else v
    )
    escaped.columns = [display.markdown_cell(c) for c in shown.columns]
    return tabulate(escaped, headers="keys", tablefmt="github", showindex=False)


def _html(title: str, *parts: str | pd.DataFrame) -> str:
    """A small standalone HTML page of paragraphs and tables (for Snakemake's report)."""
    body = [
        tabulate(p, headers="keys", tablefmt="html", showindex=False)
        if isinstance(p, pd.DataFrame)
        else f"<p>{p}</p>"
        for p in parts
    ]
    style = "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1>{''.join(body)}</body></html>\n"
    )


# ---- the whole report ----------------------------------------------------------------------------


def report(results: Path, run_dirs: list[Path], tables: dict[str, str]) -> list[Path]:
    """Write the tidy table, the tables, the figures and results/README.md; return the files."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    frame = tidy(run_dirs)
    written = []
    frame.to_csv(results / "tidy.csv", index=False)
    written.append(results / "tidy.csv")
    kinds = {exp: tables.get(exp, "table1") for exp in frame["experiment"].unique()}
    for name in ("table1", "table2", "table3", "mu_sweep", "toy"):
        exps = [e for e, k in kinds.items() if k == name]
        if not exps or (name != "table1" and frame[frame.experiment.isin(exps)].empty):
            continue
        sub = frame[frame.experiment.isin(exps)]
        finals = sub[sub.kind == "final"]
        for steps in sorted(finals["steps"].dropna().unique()) or [1]:
            for weights in sorted(finals["weights"].dropna().unique()) or ["ema"]:
                suffix = "" if steps == 1 else f"_{int(steps)}step"
                suffix += "" if weights == "ema" else f"_{weights}"
                settings = True if name == "table2" else None
                table = summary_table(sub, int(steps), weights, pool=frame, settings=settings)
                if name == "table3" and steps == 1 and weights == "ema":
                    table = pd.concat([table, same_wallclock_table(frame, sub)], ignore_index=True)
                write_tables(table, results / "tables", f"{name}{suffix}")
                written.append(results / "tables" / f"{name}{suffix}.md")
    if "table1" not in [p.stem for p in written]:
        # The rule's declared output exists regardless; runs of other tables stay out of it.
        table1 = frame[frame.experiment.map(kinds) == "table1"] if not frame.empty else frame
        empty = pd.DataFrame(columns=["experiment", "variant", "ours", "mean", "ci95", "seeds"])
        table = summary_table(table1) if not table1.empty else empty
        write_tables(table, results / "tables", "table1")
    sweep = [e for e, k in kinds.items() if k == "mu_sweep"]
    written += figures.draw_all(frame, results / "figures", sweep)
    written.append(write_claims(frame, results))
    readme = results / "README.md"
    readme.write_text(_readme(results, written, frame))
    return [*written, readme]


def _p(value: float) -> str:
    """A p-value for reading: two significant digits, '—' where there is no test."""
    return "—" if pd.isna(value) else f"{value:.2g}"


def write_claims(frame: pd.DataFrame, results: Path) -> Path:
    """results/claims.md (and .csv, .html): one row per claim with its unadjusted and
    family-adjusted p-value and verdict, then the descriptive per-snapshot and per-sigma tables."""
    table = claims.claims(frame)
    snapshots = claims.per_snapshot(frame)
    sigmas = claims.per_sigma(frame)
    reached = claims.per_level(frame)
    table.to_csv(results / "claims.csv", index=False)
    shown = table.drop(columns=["mean", "ci95"]).astype(object)
    shown["p"], shown["p_holm"] = table["p"].map(_p), table["p_holm"].map(_p)
    shown = shown.rename(columns={"p_holm": "p (Holm)"}).fillna("")
    rule = (
        f"{claims.family_statement(table)} Verdict rule: {claims.VERDICT_RULE}. `measured` is "
        "the mean ± half-width of the unadjusted 95% t-interval over training seeds of the "
        "paired difference (same dataset, training budget and seed: same initial weights, data "
        "order and noise); `pairs` counts the seeds; `p` is the row's two-sided paired t-test "
        "alone, `p (Holm)` the same after the family's adjustment, which gives the verdict. "
        "`paper` is the same difference in the paper's tables, where it reports one; `of "
        "paper` our mean as a fraction of it with the interval's ends, and `paper in CI` whether "
        "the paper's difference lies inside our 95% interval (a verdict of the right sign far "
        "from the paper's size shows here). Rows read only 1-step EMA evaluations at one sample "
        "count and one feature extractor (`gcbench.selection`); a role repeated within a seed "
        "and budget, or a pair on different extractors, is refused with the runs named. "
        "Numbers follow one rounding rule: the interval's half-width to 2 significant digits, "
        "the mean to the same decimal place; `n/a` where there is no spread to report; a "
        f"ratio as a percentage. Clocks: {measures.CLOCK_RULE}. {claims.SEEDS_METHOD}."
    )
    lines = [
        "# The paper's claims, tested on this study",
        "",
        "Generated by `gcbench report`; do not edit.",
        "",
        rule,
        "",
        _markdown(shown)
        if not table.empty
        else "No claim can be tested: the study has no finished pair of runs.",
        "",
    ]
    descriptive = (
        "Descriptive, no verdict: unadjusted 95% intervals, and neighbouring rows share runs, "
        "so a stretch of intervals on one side is weaker evidence than it looks."
    )
    snapshot_caption = (
        "GC − IC of the convergence-curve metric (its sample count is in the comparison above) "
        "at every snapshot, paired over seeds. " + descriptive + " The claim is the single "
        "'converges faster' row above."
    )
    if not snapshots.empty:
        lines += [
            "## GC − IC at every snapshot",
            "",
            snapshot_caption,
            "",
            _markdown(snapshots),
            "",
        ]
    level_caption = (
        "The speed measure level by level: the training steps and seconds (on the `clock` "
        "named, the same-budget row's) GC and IC need to first reach each fixed level of IC's "
        "curve (levels at "
        + ", ".join(f"{f:.0%}" for f in measures.LEVEL_FRACTIONS)
        + " of IC's mean log drop from its first to its last snapshot, none within "
        f"{measures.FLOOR_MARGIN:g}x the metric's floor), interpolated in log metric between "
        "snapshots, paired over seeds. " + descriptive
    )
    if not reached.empty:
        lines += [
            "## Steps to reach IC's levels",
            "",
            level_caption,
            "",
            _markdown(reached),
            "",
        ]
    sigma_caption = (
        "Transport cost E‖e − z‖² at every sigma (the paper's Fig. 3): GC's endpoints against "
        "IC's and batch OT's pairing of the same data and noise, and against the endpoint the "
        "preconditioning alone gives (network output 0: e = c_skip·(x + σz), the noisy input "
        "at σ_min), paired over seeds; each training seed has its own draw of points and "
        "noise. " + descriptive + " The claims are the mean-over-sigmas rows above."
    )
    if not sigmas.empty:
        lines += [
            "## Transport cost at every sigma",
            "",
            sigma_caption,
            "",
            _markdown(sigmas),
            "",
        ]
    path = results / "claims.md"
    path.write_text("\n".join(lines))
    parts = [rule.replace("**", "").replace("`", ""), shown]
    if not snapshots.empty:
        parts += [snapshot_caption, snapshots]
    if not reached.empty:
        parts += [level_caption, reached]
    if not sigmas.empty:
        parts += [sigma_caption, sigmas]
    (results / "claims.html").write_text(_html("The paper's claims, tested on this study", *parts))
    return path


_DESCRIPTIONS = [  # (file-name prefix, description), most specific first
    (
        "claims",
        "the paper's claims tested on this study: paired difference over seeds, 95% CI, pairs, "
        "the paper's difference, ours as a fraction of it and whether it lies in our CI, "
        "unadjusted and Holm-adjusted p, verdict at a family-wise 5% (reproduced / "
        "contradicted / inconclusive; deterministic, refused, descriptive and not a paper claim "
        "stay outside the family), and for every inconclusive row the seeds that would settle "
        "it at the measured size and at the paper's; then GC − IC at every snapshot (flagged "
        "below the metric's floor, with the seeds that would clear zero), the steps to reach "
        "IC's levels, and the transport cost at every sigma, descriptive",
    ),
    (
        "tidy",
        "every number of every run, one row per run × step × metric (kind: train, curve, "
        "final, transport, status)",
    ),
    (
        "table1",
        "Table 1 style: headline metric (with ↓ / ↑) per experiment × method, mean ± 95% CI "
        "over seeds by the rounding rule, completed seeds, the paper's value and the gap, the "
        "paired difference to IC per seed with its CI, missing seeds",
    ),
    (
        "table2",
        "Table 2 style (ECT fine-tuning a pretrained EDM denoiser, ECT-IC vs ECT-GC (μ = 0.3)): "
        "the columns of Table 1 plus `setting` (ECT short / long; EDM pretraining for the "
        "denoiser ECT starts from, its own row without a paper value) and `paper source`; "
        "`paper` is Table 2's number for the run's setting, and the paired difference pairs "
        "only within one setting",
    ),
    ("table3", "Table 3 ablations, the columns of Table 1, and GC at IC's training budget"),
    (
        "mu_sweep.",
        "final headline metric against μ for GC without dropout, mean ± 95% band over seeds, "
        "IC as a dashed line",
    ),
    ("mu_sweep", "the μ sweep, the columns of Table 1"),
    (
        "toy",
        "the 2-D toy, the columns of Table 1 (measurements: the paper's toy, Fig. 3, claims "
        "transport cost only)",
    ),
    (
        "curve_",
        "convergence curve of the headline metric per method (log y: geometric mean and 95% "
        "band over seeds) against training iterations, with the paired difference to IC below, "
        "or against training wall-clock",
    ),
    (
        "transport_cost_",
        "E‖e − z‖² per σ (log-log; geometric mean and 95% band over seeds) for IC's and batch "
        "OT's pairings and the preconditioning alone (dashed) and GC's endpoints of each "
        "trained network (solid): the paper's Fig. 3",
    ),
]
_VARIANTS = {  # a table name's suffix -> what it changes
    "_2step": "; at 2 sampling steps (the paper reports 1-step values only: no paper column)",
    "_online": "; of the online weights instead of the EMA weights",
}
_FORMATS = {
    ".md": "Markdown",
    ".tex": "LaTeX booktabs float with caption and label",
    ".html": "HTML",
    ".csv": "CSV, unrounded numbers",
    ".png": "PNG",
    ".pdf": "PDF (vector)",
}


def _readme(results: Path, written: list[Path], frame: pd.DataFrame) -> str:
    """results/README.md: the missing runs, then every file the report wrote, one row each."""
    lines = ["# Results", "", "Generated by `gcbench report`; do not edit.", ""]
    missing = frame[frame.metric == "missing"]
    if not missing.empty:
        lines += [
            f"**{len(missing)} run(s) missing or incomplete:** "
            + ", ".join(sorted(missing["run"])),
            "",
        ]
    lines += ["| file | formats | what it is |", "|---|---|---|"]
    # Each written file with its siblings in the other formats (a table: .md, .tex, .html, .csv).
    files = sorted({s for p in written for s in p.parent.glob(f"{p.stem}.*") if s.is_file()})
    stems: dict[Path, list[str]] = {}
    for path in files:
        if path.name != "README.md":
            stems.setdefault(path.with_suffix(""), []).append(path.suffix)
    for stem, suffixes in stems.items():
        text = next((d for k, d in _DESCRIPTIONS if stem.name.startswith(k)), "")
        text += "".join(note for part, note in _VARIANTS.items() if part in stem.name)
        formats = ", ".join(f"`{s}` ({_FORMATS.get(s, s)})" for s in sorted(suffixes))
        rel = display.markdown_cell(stem.relative_to(results))
        lines.append(
            f"| `{rel}` | {display.markdown_cell(formats)} | {display.markdown_cell(text)} |"
        )
    lines += [
        "",
        "Table columns: `method` = the run's role as the paper names it (IC, batch OT, GC (μ = "
        "0.5), GC online endpoint, ECT-GC (μ = 0.3), …; `variant` is the study's own name for "
        "the runs); `metric` = what a cell averages (metric with ↓ lower or ↑ higher is "
        "better, mode, sampling steps, n, weights); `ours` = mean ± 95% t-interval over "
        "completed seeds, the interval to 2 significant digits and the mean to the same "
        "decimal place (`n/a`: one seed, or no spread to report); `seeds` = completed/"
        "expected; `paper` = the paper's number (1-step only); `gap` = ours − paper; `paper "
        "in PI` = whether the paper's single run lies in the 95% prediction interval of one of "
        "our runs (t·s·√(1 + 1/n)); `paired Δ vs IC` = mean ± 95% CI of (variant − IC) over "
        "seeds where both finished, IC of the same dataset, setting, budget and seed; `pairs` "
        "= how many such seeds; `missing seeds` = expected seeds without a final result. Table "
        "2 adds `setting` (ECT short, ECT long, EDM pretraining) and `paper source` (Table 1, "
        "2 or 3; Table 2's FFHQ 64 row is marked unconfirmed: it appears only in other "
        "versions of the paper). The .tex tables keep the paper's columns and say a column "
        "that is the same in every row (experiment, metric) once in the caption.",
        "",
    ]
    return "\n".join(lines)
