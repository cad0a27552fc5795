"""What a reader pastes into a paper: the rounding rule, LaTeX that compiles with a real engine,
a results README that renders, and one visual language across figures."""

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from gcbench import display, figures
from gcbench.report import report, tidy
from test_report import _curve, _ect_study, _full, _run

# ---- the rounding rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "half", "signed", "shown"),
    [
        (83.96, 74.2, False, "84 ± 74"),  # half to 2 significant digits, mean to its place
        (-2.585, 22.0, True, "-3 ± 22"),
        (0.001096, 0.0015, False, "0.0011 ± 0.0015"),
        (78.8, 290.0, True, "+80 ± 290"),  # tens: no exponent, no decimal point
        (3.15, 35.0, True, "+3 ± 35"),
        (-16.04, 16.0, True, "-16 ± 16"),
        (6.6, 0.996, False, "6.6 ± 1.0"),  # 0.996 rounds up to 1.0: the place follows it
        (-0.4, 22.0, True, "+0 ± 22"),  # never "-0"
        (0.4, 0.0, False, "0.400 ± n/a"),  # no spread to report: n/a, never ± 0
        (12.345, math.nan, True, "+12.3 ± n/a"),  # one seed
        (math.nan, 1.0, False, "—"),
    ],
)
def test_rounding_rule_on_chosen_numbers(mean, half, signed, shown):
    assert display.fmt(mean, half, signed=signed) == shown


def test_a_ratio_is_a_percentage():
    assert display.fmt(0.197, 0.24, signed=True, percent=True) == "+20% ± 24%"
    assert display.number(0.2, signed=True, percent=True) == "+20%"
    assert display.number(-0.960, signed=True) == "-0.96"  # the paper's number as it gives it


def test_methods_and_metrics_have_their_papers_names():
    assert display.method_name("gc") == "GC (μ = 0.5)"
    assert display.method_name("ot") == "batch OT"
    assert display.method_name("gc_ot") == "GC + OT (μ = 0.5)"
    assert display.method_name("gc_online") == "GC online endpoint"
    assert display.method_name("ic", "ECT short") == "ECT-IC"
    assert display.method_name("gc", "ECT long") == "ECT-GC (μ = 0.3)"
    assert display.method_name("gc_mu0.7") == "GC (μ = 0.7)"
    assert (
        display.metric_name("fid") == "FID ↓" and display.metric_name("inception_score") == "IS ↑"
    )


def test_latex_escapes_specials_and_refuses_a_character_it_cannot_set():
    assert display.latex("a_b 50% -3 ± 2, μ") == r"a\_b 50\% $-$3 $\pm$ 2, $\mu$"
    assert display.latex("1-step") == "1-step"  # a hyphen, not a minus
    with pytest.raises(ValueError, match="no LaTeX for"):
        display.latex("☃")


# ---- a fake study with every kind of output --------------------------------------------------


def _transport(run: Path, scale: float) -> None:
    """Transport costs in the run's final evaluation: GC below OT below IC, per sigma."""
    final = run / "eval" / "final.json"
    records = json.loads(final.read_text())
    costs = []
    for sigma in (0.002, 0.1, 1.0, 10.0):
        for coupling, factor in (("ic", 3.0), ("ot", 2.0), ("gc", 1.0), ("forced", 2.5)):
            value = factor * scale * (1 + sigma**2)
            costs.append({"coupling": coupling, "sigma": sigma, "transport_cost": value})
    records[0]["transport_cost"] = costs
    final.write_text(json.dumps(records))


def _study(root: Path) -> list[Path]:
    """Table 1 and Table 3 runs with curves and transport costs; IC's curves spread over two
    orders of magnitude across seeds (a symmetric band would cross zero)."""
    runs = []
    for seed in range(3):
        ic = _run(root, "cifar10", "ic", seed, _full(7.0 + seed, seed))
        _curve(ic, [40.0 * 10**seed, 20.0, 8.0 + seed], seconds_per_step=0.01)
        gc = _run(root, "cifar10", "gc", seed, _full(6.0 + 0.3 * seed**2, seed))
        _curve(gc, [30.0, 15.0, 6.5 + seed], seconds_per_step=0.012)
        ot = _run(root, "cifar10", "ot", seed, _full(6.5, seed))
        _curve(ot, [35.0, 18.0, 7.0 + seed], seconds_per_step=0.011)
        online = _run(
            root,
            "cifar10_ablations",
            "gc_online_endpoint",
            seed,
            _full(6.5 + 0.2 * seed, seed),
            endpoint="online",
        )
        _curve(online, [32.0, 16.0, 7.0], seconds_per_step=0.012)
        for run, scale in ((ic, 1.0 + seed), (gc, 1.1 + seed), (ot, 0.9 + seed)):
            _transport(run, scale)
        runs += [ic, gc, ot, online]
    return runs


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Both fake studies reported, as their results folders (once: the tests only read them)."""
    tmp_path = tmp_path_factory.mktemp("studies")
    main = tmp_path / "a" / "main"  # runs under tmp_path/a/runs, as a study's outdir holds them
    report(main, _study(main.parent), {"cifar10": "table1", "cifar10_ablations": "table3"})
    ect = tmp_path / "b" / "ect"
    tables = {"cifar10": "table1", "cifar10_pretrain": "table2"}
    tables |= {"cifar10_ect_short": "table2", "cifar10_ect_long": "table2"}
    report(ect, _ect_study(ect.parent), tables)
    return main, ect


# ---- LaTeX -----------------------------------------------------------------------------------


def _engine() -> str:
    """pdflatex, or skip; under CI (CI set, as .ci/run's machines do) a missing engine fails."""
    engine = shutil.which("pdflatex")
    if engine is None:
        message = "no LaTeX engine: apt-get install texlive-latex-base texlive-latex-recommended"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return engine


def test_every_table_the_report_writes_compiles_with_a_real_engine(written, tmp_path):
    engine = _engine()
    tex = sorted(p for folder in written for p in (folder / "tables").glob("*.tex"))
    assert len(tex) >= 10  # Table 1, 2 and 3 and their 2-step and online variants
    for path in tex:
        text = path.read_text()
        assert text.count(r"\begin{table}") == 1 and r"\caption{" in text and r"\label{" in text
        assert r"\toprule" in text and r"\bottomrule" in text and text.isascii()
    body = "\n".join(rf"\input{{{p}}}" + "\n\\clearpage" for p in tex)
    doc = tmp_path / "tables.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "tables.log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    assert "Missing character" not in log  # a glyph silently dropped
    labels = re.findall(r"\\newlabel\{([^}]*)\}", (tmp_path / "tables.aux").read_text())
    assert len(set(labels)) == len(tex)  # every table set, each with its own label
    assert "tab:main-table1" in labels and "tab:ect-table2" in labels


def test_the_paper_table_has_names_directions_and_the_metric_in_its_caption(written):
    main, ect = written
    table1 = (main / "tables" / "table1.tex").read_text()
    assert r"GC ($\mu$ = 0.5)" in table1 and "batch OT" in table1
    assert (
        r"FID $\downarrow$ (legacy\_tensorflow, 1-step, n=50000, EMA)" in table1.split(r"\label")[0]
    )
    assert r"IS $\uparrow$" in table1 and " gc " not in table1
    assert "ECT-GC ($\\mu$ = 0.3)" in (ect / "tables" / "table2.tex").read_text()
    # A refusal (GC's curve brackets IC's budget too widely) is a mark in its cell and a note in
    # the caption, not a sentence that sets the table's width.
    table3 = (main / "tables" / "table3.tex").read_text()
    caption, rows = table3.split(r"\midrule")
    assert "Note 1: refused: seed 0" in caption and " & note 1 & " in rows
    md = (main / "tables" / "table1.md").read_text()
    assert "| GC (μ = 0.5)" in md and "± 0 " not in md and "FID ↓" in md


# ---- results/README.md -----------------------------------------------------------------------


def test_the_results_readme_renders_and_describes_every_file(written):
    for folder in written:
        lines = (folder / "README.md").read_text().splitlines()
        header = lines[lines.index("| file | formats | what it is |")]
        rows = [line for line in lines if line.startswith("| `")]
        listed = set()
        for row in rows:  # as many unescaped cell separators as the header: the row holds
            assert len(re.findall(r"(?<!\\)\|", row)) == header.count("|"), row
            stem, formats, text = (c.strip() for c in re.split(r"(?<!\\)\|", row)[1:4])
            assert text and not text.startswith(";"), row  # described, not blank
            listed |= {stem.strip("`") + s for s in re.findall(r"`(\.\w+)`", formats)}
        on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert on_disk - {"README.md"} == listed
    readme = (written[0] / "README.md").read_text()
    assert "E‖e − z‖²" in readme and "||" not in readme


# ---- figures ---------------------------------------------------------------------------------


def _lines(frame: pd.DataFrame, experiment: str) -> dict[str, str]:
    """Legend label -> line colour of the convergence figure of one experiment."""
    curve, label = figures.curve_frame(frame, experiment)
    fig, ax = figures._plt().subplots()
    figures._draw(ax, figures.band_frame(curve, "series", "step", log=True))
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    figures._plt().close(fig)
    return colours


def test_a_method_has_one_colour_across_figures_and_studies(tmp_path):
    frame = tidy(_study(tmp_path))
    table1, table3 = _lines(frame, "cifar10"), _lines(frame, "cifar10_ablations")
    assert set(table1) == {"IC", "GC (μ = 0.5)", "batch OT"}  # display names in the legend
    assert set(table3) == {"GC online endpoint"}
    colours = {**table1, **table3}
    assert len(set(colours.values())) == len(colours)  # no two methods share a colour
    # The transport figure draws GC's endpoints of the GC network in GC's colour too.
    rows = figures.transport_frame(frame[(frame.kind == "transport")])
    bands = figures.band_frame(rows, "series", "sigma", log=True)
    fig, ax = figures._plt().subplots()
    figures._draw(ax, bands)
    transport = {line.get_label(): line.get_color() for line in ax.get_lines()}
    figures._plt().close(fig)
    assert transport["GC endpoints, GC (μ = 0.5) network"] == table1["GC (μ = 0.5)"]
    assert transport["IC pairing (e = x)"] == table1["IC"]


def test_bands_on_a_log_axis_stay_positive(tmp_path):
    frame = tidy(_study(tmp_path))
    curve, _ = figures.curve_frame(frame, "cifar10")
    ic = curve[(curve.role == "ic") & (curve.step == 10_000)]["value"]
    linear = figures.band_frame(curve, "series", "step").set_index(["series", "x"])
    assert linear.loc[("IC", 10_000), "lo"] < 0  # what a symmetric band would draw: below zero
    bands = figures.band_frame(curve, "series", "step", log=True)
    assert (bands["lo"] > 0).all() and (bands["lo"] <= bands["mean"]).all()
    # The line is the geometric mean: exp of the mean log value over seeds.
    at = bands.set_index(["series", "x"]).loc[("IC", 10_000), "mean"]
    assert at == pytest.approx(math.exp(ic.map(math.log).mean()))
    fig, ax = figures._plt().subplots()
    figures._draw(ax, bands)
    filled = [path.vertices[:, 1] for c in ax.collections for path in c.get_paths()]
    figures._plt().close(fig)
    assert filled and all((y > 0).all() for y in filled)


def test_figure_titles_say_the_seed_and_sample_counts(tmp_path):
    frame = tidy(_study(tmp_path))
    curve, label = figures.curve_frame(frame, "cifar10")
    fig = figures.convergence_figure(curve, label, figures.curve_title("cifar10", curve, label))
    title = fig.axes[0].get_title().replace("\n", " ")
    figures._plt().close(fig)
    assert "n = 10000 samples" in title and "over 3 seeds" in title and "FID ↓" in title
