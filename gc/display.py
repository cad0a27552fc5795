"""How results look to a reader: method and metric names, one rounding rule, one style per
method for every figure, and LaTeX that compiles. Tables and claims format through here only,
so a number reads the same in every file.

The rounding rule: a 95% interval's half-width to two significant digits and its mean to the
same decimal place (83.96 ± 74.2 → 84 ± 74; 0.001096 ± 0.0015 → 0.0011 ± 0.0015); a mean
without a spread to report (one seed, or every seed equal) to three significant digits with
`± n/a`, never `± 0`.
"""

from __future__ import annotations

import math
import re

from .paper import ECT_LONG, ECT_SHORT
from .recipes import ECT_ENDPOINT, ECT_MU, GC_MU

NO_VALUE = "—"
NO_SPREAD = "n/a"

# ---- names ---------------------------------------------------------------------------------

_METHODS = {  # role (selection.role) -> name in the paper's words, iCT setting
    "ic": "IC",
    "ot": "batch OT",
    "gc": f"GC (μ = {GC_MU:g})",
    "gc_ot": f"GC + OT (μ = {GC_MU:g})",
    "gc_online": "GC online endpoint",
    "gc_dropout": "GC with dropout",
    "denoiser": "EDM denoiser",
}
_ECT_METHODS = {  # Table 2: ECT fine-tuning with either coupling
    "ic": "ECT-IC",
    "gc": f"ECT-GC (μ = {ECT_MU:g})",
    "gc_online": f"ECT-GC (μ = {ECT_MU:g}, online endpoint)",
    "gc_ema": f"ECT-GC (μ = {ECT_MU:g}, EMA endpoint)",
}


def method_name(role: str, setting: str = "") -> str:
    """A run's role as the paper names the method; the role itself where it has no name."""
    if not isinstance(role, str) or not role:
        return ""
    if setting in (ECT_SHORT, ECT_LONG):
        if role == f"gc_{ECT_ENDPOINT}":
            return _ECT_METHODS["gc"]
        if role in _ECT_METHODS:
            return _ECT_METHODS[role]
    if role.startswith("gc_mu"):
        return f"GC (μ = {float(role[5:]):g})"
    return _METHODS.get(role, role)


# Lower is better for every distance; higher for the Inception Score.
_METRICS = {
    "fid": ("FID", "↓"),
    "kid": ("KID", "↓"),
    "inception_score": ("IS", "↑"),
    "fd_digits": ("FD-digits", "↓"),
    "frechet_2d": ("2-D Fréchet distance", "↓"),
    "loss": ("training loss", "↓"),
}


def metric_name(metric: str) -> str:
    """The metric with its direction marker, e.g. "FID ↓"."""
    name, arrow = _METRICS.get(metric, (metric, ""))
    return f"{name} {arrow}".strip()


# ---- numbers -------------------------------------------------------------------------------


def _decimals(half: float) -> int:
    """Decimal places that show `half` to two significant digits (negative: tens, hundreds)."""
    rounded = float(f"{half:.2g}")  # 99.6 → 100: the place follows the rounded value
    return 1 - math.floor(math.log10(rounded))


def _fixed(value: float, decimals: int, signed: bool) -> str:
    sign = "+" if signed else ""
    value = round(value, decimals) + 0.0  # + 0.0: a mean that rounds to zero shows no "-0"
    return f"{value:{sign}.{max(decimals, 0)}f}"  # decimals < 0: tens, hundreds, no point


def _plain(value: float, signed: bool) -> str:
    """Three significant digits without an exponent (no interval fixes the place)."""
    if value == 0:
        return "0"
    return _fixed(value, max(0, 2 - math.floor(math.log10(abs(value)))), signed)


def fmt(mean: float, half: float = math.nan, signed: bool = False, percent: bool = False) -> str:
    """A mean and the half-width of its 95% interval by the rounding rule (module docstring).
    `signed`: a difference, with its sign always shown; `percent`: a ratio, shown ×100 with %."""
    if mean is None or math.isnan(mean):
        return NO_VALUE
    unit = "%" if percent else ""
    if percent:
        mean, half = 100 * mean, 100 * half
    if math.isnan(half) or half == 0:
        return f"{_plain(mean, signed)}{unit} ± {NO_SPREAD}"
    places = _decimals(half)
    return f"{_fixed(mean, places, signed)}{unit} ± {_fixed(half, places, False)}{unit}"


def number(value: float | None, signed: bool = False, percent: bool = False) -> str:
    """A single number (the paper's value, a gap) to three significant digits, trailing zeros
    dropped (the paper's 6.40 is its 6.4); "" for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _plain(100 * value if percent else value, signed)
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return text + ("%" if percent else "")


# ---- figures -------------------------------------------------------------------------------

# Okabe & Ito's colour-blind-safe palette, one colour and marker per method in every figure of
# every study (the ECT arms share their iCT counterpart's).
_STYLES = {
    "ic": ("#0072B2", "o"),  # blue
    "ot": ("#E69F00", "s"),  # orange
    "gc": ("#D55E00", "^"),  # vermillion
    "gc_online": ("#CC79A7", "v"),  # reddish purple
    "gc_ema": ("#CC79A7", "v"),  # ECT's other endpoint network
    "gc_dropout": ("#009E73", "D"),  # bluish green
    "gc_ot": ("#56B4E9", "P"),  # sky blue
    "denoiser": ("#000000", "*"),
    "forced": ("#000000", "x"),  # the preconditioning alone (transport cost)
}


def style(role: str) -> dict:
    """Matplotlib keywords (color, marker) for a role; GC of another mu takes a shade of the
    colour-blind-safe cividis map by its mu, so a mu has one colour everywhere."""
    if isinstance(role, str) and role.startswith("gc_mu"):
        import matplotlib

        mu = min(max(float(role[5:]), 0.0), 1.0)
        return {
            "color": matplotlib.colors.to_hex(matplotlib.colormaps["cividis"](mu)),
            "marker": "d",
        }
    color, marker = _STYLES.get(role, ("#999999", "."))
    return {"color": color, "marker": marker}


# ---- LaTeX ---------------------------------------------------------------------------------

_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "μ": r"$\mu$",
    "σ": r"$\sigma$",
    "Δ": r"$\Delta$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "−": r"$-$",
    "–": "--",
    "—": "---",
    "≈": r"$\approx$",
    "×": r"$\times$",
    "‖": r"$\|$",
    "²": r"$^2$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "·": r"$\cdot$",
    "√": r"$\surd$",
    "é": r"\'e",
    "→": r"$\to$",
}


def latex(text: object) -> str:
    """Plain text as LaTeX that pdflatex compiles without extra packages: specials escaped,
    the symbols these reports use as math, a minus sign before a number as math (not a
    hyphen). ValueError for a character with no mapping, rather than a file that fails later."""
    out = "".join(_LATEX.get(c, c) for c in str(text))
    out = re.sub(r"(^|[\s(])-(?=\d)", r"\1$-$", out)
    if odd := sorted({c for c in out if ord(c) > 127}):
        raise ValueError(f"no LaTeX for {odd!r} in {text!r}: add it to display._LATEX")
    return out


def latex_table(header: list[str], rows: list[list[str]], caption: str, label: str) -> str:
    """A complete booktabs `table` float (needs \\usepackage{booktabs} and {graphicx}):
    caption above the rule, label, first column left-aligned and the rest centred, shrunk to
    the line width only where it is wider (a paper's column or page)."""
    spec = "l" + "c" * (len(header) - 1)
    line = lambda cells: " & ".join(latex(c) for c in cells) + r" \\"
    body = [line(r) for r in rows]
    return "\n".join(
        [
            "% Generated by `gcbench report`; needs \\usepackage{booktabs} and {graphicx}.",
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex(caption)}}}",
            rf"\label{{{re.sub(r'[^A-Za-z0-9:.-]', '-', label)}}}",
            r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            line(header),
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}}",
            r"\end{table}",
            "",
        ]
    )


def markdown_cell(text: object) -> str:
    """Text safe inside a Markdown table cell: `|` escaped, newlines as spaces."""
    return str(text).replace("|", r"\|").replace("\n", " ")
