"""The report's figures: frames first (mean and 95% band per series and x), drawn second.

One visual language in every figure of every study: a method keeps its colour and marker
(`display.style`, keyed by the run's role) and its display name; titles say the seed and sample
counts; on a log axis the band is the geometric mean's 95% interval, computed on log values, so
it stays positive however wide the spread.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from . import display, grids, selection
from .paper import ICT, primary
from .stats import mean_ci

# ---- frames ------------------------------------------------------------------------------------


def band_frame(
    frame: pd.DataFrame, series: str, x: str, x_value: str | None = None, log: bool = False
) -> pd.DataFrame:
    """Mean and 95% band over seeds of `value`, per series and x (x_value: plot against the
    mean of another column of each group, e.g. wall-clock per snapshot). `log`: the geometric
    mean and the 95% t-interval of the log values, mapped back (always positive; a point with
    a value ≤ 0 has no place on a log axis and is left out). Carries each series' `role` (its
    style) and `dashed` where the frame has them."""
    rows = []
    for (name, xv), g in frame.groupby([series, x]):
        values = g["value"].dropna()
        if log and (values <= 0).any():
            continue
        mean, half = mean_ci(np.log(values) if log else values)  # nan width with one seed
        lo, hi = mean - half, mean + half
        if log:
            mean, lo, hi = math.exp(mean), math.exp(lo), math.exp(hi)
        row = {"series": name, "x": g[x_value].mean() if x_value else xv}
        row |= {"mean": mean, "lo": lo, "hi": hi, "seeds": len(values)}
        row |= {"role": g["role"].iloc[0] if "role" in g else ""}
        row |= {"dashed": bool(g["dashed"].iloc[0]) if "dashed" in g else False}
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["series", "x"]) if rows else pd.DataFrame()


def _method_series(rows: pd.DataFrame) -> pd.Series:
    """Each row's method as the paper names it; the variant beside it where two variants of
    the figure would share a name (they must not share a line)."""
    names = rows.apply(lambda r: display.method_name(r["role"], r["setting"]), axis=1)
    names = names.where(names != "", rows["variant"])
    shared = names.groupby(names).transform(lambda n: rows.loc[n.index, "variant"].nunique() > 1)
    return names.where(~shared, names + " [" + rows["variant"] + "]")


def curve_frame(frame: pd.DataFrame, experiment: str) -> tuple[pd.DataFrame, str]:
    """The headline metric's convergence-curve rows of one experiment (selection's rule), with
    each run's role and display name (`series`), and the y label."""
    sub = frame[(frame.experiment == experiment) & (frame.kind == "curve")]
    if sub.empty:
        return sub, ""
    dataset = sub["dataset"].dropna().iloc[0]
    metric = display.metric_name(primary(dataset)[0])
    sub = selection.headline_curves(selection.annotated(sub), dataset)
    if sub.empty:
        return sub, metric
    label = f"{metric} (1-step, EMA, n = {int(sub['n'].iloc[0])} samples)"
    return sub.assign(series=_method_series(sub)), label


def paired_difference_bands(curve: pd.DataFrame) -> pd.DataFrame:
    """Per method and snapshot: mean ± 95% CI over seeds of (method − IC), same seed."""
    baseline = curve.loc[curve.coupling == "ic", "series"].unique()
    if len(baseline) != 1:
        return pd.DataFrame()
    wide = curve.pivot_table(index=["step", "seed"], columns="series", values="value")
    diffs = wide.drop(columns=baseline[0]).sub(wide[baseline[0]], axis=0)
    long = diffs.reset_index().melt(id_vars=["step", "seed"], var_name="method").dropna()
    roles = curve.drop_duplicates("series").set_index("series")["role"]
    long = long.assign(series=long["method"] + " − " + baseline[0], role=long["method"].map(roles))
    return band_frame(long, "series", "step")


def mu_sweep_frame(frame: pd.DataFrame, sweep: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Final headline metric against mu for GC without dropout (the sweep's runs, plus the
    paper's GC mu = 0.5 where it was scored like them), and IC's values beside it. Only rows of
    the sweep's sample count, 1-step, EMA: never two protocols in one figure."""
    frame = selection.annotated(frame)
    frame = frame[frame.setting == ICT]  # IC and GC mu = 0.5 of iCT, never ECT's runs
    dataset = frame.loc[frame.experiment.isin(sweep), "dataset"].dropna().iloc[0]
    metric, mode = primary(dataset)
    # The sweep's pairing groups (dataset, budget): IC and GC mu = 0.5 of another budget stay out.
    groups = set(frame.loc[frame.experiment.isin(sweep), "group"].dropna())
    rows = selection.finals(frame[frame.group.isin(groups)], metric, mode)
    n = rows.loc[rows.experiment.isin(sweep), "n"].max()
    rows = rows[rows.n == n]
    gc = rows[(rows.coupling == "gc") & (rows.endpoint == "ema") & (rows.max_dropout == 0)]
    gc = gc[gc.experiment.isin(sweep) | (gc.role == "gc")].drop_duplicates(["mu", "seed"])
    ic = rows[rows.role == "ic"]
    # A repeated IC run of one seed is not resolved by picking one: IC is left out.
    ic = ic["value"] if not ic.duplicated("seed").any() else ic["value"].iloc[:0]
    return gc.assign(series="GC without dropout"), ic


# The pairings of the transport-cost figure that do not depend on training: dashed lines.
_PAIRINGS = {
    "transport_ic": ("IC pairing (e = x)", "ic"),
    "transport_ot": ("batch OT pairing (x re-paired)", "ot"),
    "transport_forced": ("preconditioning alone (network output 0)", "forced"),
}


def transport_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """One experiment's transport rows as series: IC's, batch OT's and the preconditioning's
    pairings once (they do not depend on the trained network), and GC's endpoints once per
    trained method (they do: each network predicts its own)."""
    rows = selection.annotated(rows)
    first = rows["variant"].iloc[0]
    rows = rows[~(rows.metric.isin(_PAIRINGS) & (rows.variant != first))]
    pairing = rows["metric"].isin(_PAIRINGS)
    names = rows["metric"].map(lambda m: _PAIRINGS.get(m, ("", ""))[0])
    networks = "GC endpoints, " + _method_series(rows) + " network"
    roles = rows["metric"].map(lambda m: _PAIRINGS.get(m, ("", ""))[1])
    return rows.assign(
        series=names.where(pairing, networks),
        role=roles.where(pairing, rows["role"]),
        dashed=pairing,
    )


# ---- drawing -----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax, bands: pd.DataFrame) -> None:
    """A line per series in its method's colour and marker, with its 95% band; a series of one
    seed has no band to draw, so it is a bare line labelled as one seed (a zero-width band
    would read as no spread)."""
    for name, g in bands.groupby("series"):
        one_seed = g["seeds"].max() <= 1
        label = f"{name} (one seed)" if one_seed else str(name)
        style = display.style(g["role"].iloc[0] if "role" in g else "")
        ls = "--" if "dashed" in g and g["dashed"].any() else "-"
        ax.plot(g["x"], g["mean"], ls=ls, ms=4, label=label, **style)
        if not one_seed:
            ax.fill_between(g["x"], g["lo"], g["hi"], color=style["color"], alpha=0.2, lw=0)
    ax.legend(fontsize=7)


def _seeds(bands: pd.DataFrame) -> str:
    low, high = int(bands["seeds"].min()), int(bands["seeds"].max())
    return f"{high} seed{'s' * (high != 1)}" if low == high else f"{low}–{high} seeds"


def _title(ax, text: str) -> None:
    """A title wrapped to the figure's width (it carries the seed and sample counts)."""
    ax.set_title(textwrap.fill(text, 72), fontsize=8)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        fig.savefig(path.with_suffix(suffix), dpi=120)
    _plt().close(fig)
    return path.with_suffix(".png")


def draw_bands(
    bands: pd.DataFrame,
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """One line with a shaded band per series; written as PNG and PDF (bands for a log y axis
    come from `band_frame(..., log=True)`)."""
    fig, ax = _plt().subplots(figsize=(5.5, 3.8))
    _draw(ax, bands)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    _title(ax, title)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    return _save(fig, path)


def curve_title(experiment: str, curve: pd.DataFrame, ylabel: str) -> str:
    """What a convergence figure shows, with its sample count (in `ylabel`) and seed count."""
    seeds = _seeds(band_frame(curve, "series", "step"))
    return f"{experiment}: {ylabel}; geometric mean and 95% band over {seeds}"


def draw_convergence(curve: pd.DataFrame, ylabel: str, title: str, path: Path) -> Path:
    return _save(convergence_figure(curve, ylabel, title), path)


def convergence_figure(curve: pd.DataFrame, ylabel: str, title: str):
    """The metric per method against iterations (log y: geometric mean and 95% band over
    seeds), and below it the paired difference to IC with its 95% CI."""
    diffs = paired_difference_bands(curve)
    rows = 2 if not diffs.empty else 1
    fig, axes = _plt().subplots(
        rows, 1, figsize=(5.5, 3.8 * rows), sharex=True, squeeze=False, height_ratios=[3, 2][:rows]
    )
    top = axes[0, 0]
    _draw(top, band_frame(curve, "series", "step", log=True))
    top.set(ylabel=ylabel, yscale="log")
    _title(top, title)
    if rows == 2:
        bottom = axes[1, 0]
        _draw(bottom, diffs)
        bottom.axhline(0, color="black", lw=0.8)
        bottom.set(ylabel="paired difference to IC", xlabel="training iterations")
    else:
        top.set(xlabel="training iterations")
    return fig


def draw_mu_sweep(frame: pd.DataFrame, sweep: list[str], path: Path) -> Path | None:
    gc, ic = mu_sweep_frame(frame, sweep)
    if gc.empty:
        return None
    bands = band_frame(gc.assign(role="gc"), "series", "mu")
    fig, ax = _plt().subplots(figsize=(5.5, 3.8))
    _draw(ax, bands)
    if len(ic):
        mean, half = mean_ci(ic)
        color = display.style("ic")["color"]
        label = f"{display.method_name('ic')} (its own dropout; {len(ic)} seeds)"
        ax.axhline(mean, color=color, ls="--", lw=1, label=label)
        if not math.isnan(half):
            ax.axhspan(mean - half, mean + half, color=color, alpha=0.1)
        ax.legend(fontsize=7)
    metric = display.metric_name(primary(gc["dataset"].iloc[0])[0])
    ax.set(xlabel="μ (fraction of GC samples in a batch)", ylabel=f"final {metric}")
    _title(
        ax,
        f"GC's μ sweep: final {metric}, 1-step, EMA, n = {gc['n'].iloc[0]:g} samples; "
        f"mean and 95% band over {_seeds(bands)}",
    )
    return _save(fig, path)


def draw_sample_grids(panels: dict[str, Path], title: str, path: Path) -> Path:
    """Each variant's latest sample picture side by side (grids.py: the same noise in every
    panel, so image k of one variant faces image k of the others)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, png) in zip(axes[0], panels.items(), strict=True):
        image = plt.imread(png)
        ax.imshow(
            image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_title(f"{name}, {png.stem.replace('-', ' ')}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def sample_panels(rows: pd.DataFrame) -> dict[str, Path]:
    """Each variant's last sample grid, from its lowest seed, under the variant's name."""
    first = rows.sort_values("seed").drop_duplicates("variant")
    panels = {
        f"{v} s{seed}": grids.final_grid(Path(run))
        for v, seed, run in zip(first.variant, first.seed, first.run, strict=True)
    }
    return {name: png for name, png in panels.items() if png is not None}


def draw_all(frame: pd.DataFrame, folder: Path, sweep: list[str]) -> list[Path]:
    """Every figure of a study: the convergence curves of each experiment against iterations
    and wall-clock, each variant's last sample grid, the mu sweep (`sweep`: its experiments),
    and the transport cost."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for experiment in frame["experiment"].unique():
        curve, ylabel = curve_frame(frame, experiment)
        if curve.empty:
            continue
        title = curve_title(experiment, curve, ylabel)
        path = folder / f"curve_{experiment}_iterations"
        written.append(draw_convergence(curve, ylabel, title, path))
        bands = band_frame(curve, "series", "step", x_value="train_seconds", log=True)
        path = folder / f"curve_{experiment}_wallclock"
        written.append(draw_bands(bands, "training wall-clock (s)", ylabel, title, path, logy=True))
    for experiment, rows in frame.groupby("experiment", sort=False):
        if panels := sample_panels(rows):
            title = f"{experiment}: 1-step EMA samples of the last snapshot, same noise"
            written.append(draw_sample_grids(panels, title, folder / f"samples_{experiment}"))
    if sweep:
        path = draw_mu_sweep(frame, sweep, folder / "mu_sweep")
        written += [path] if path else []
    for experiment, rows in frame[frame.kind == "transport"].groupby("experiment"):
        bands = band_frame(transport_frame(rows), "series", "sigma", log=True)
        title = (
            f"transport cost ({experiment}); geometric mean and 95% band over {_seeds(bands)}, "
            "each seed its own draw of points and noise"
        )
        path = folder / f"transport_cost_{experiment}"
        written.append(draw_bands(bands, "σ", "E‖e − z‖²", title, path, logx=True, logy=True))
    return written
