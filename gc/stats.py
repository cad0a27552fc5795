"""Statistics over training seeds: the mean and its 95% t-interval, the paired t-test, Holm's
step-down adjustment and the verdict rule. This is the one place that decides a verdict: the
claims and the report's tables call it, so they cannot disagree.

Every function that takes differences reads them along the last axis and drops NaN (a missing
seed), so one call can test many rows, or many simulated studies, at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

ALPHA = 0.05  # the family-wise error rate of a study's verdicts, and 1 − the intervals' level
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
# Differences with no spread over seeds (every pair equal): the same number however the seeds
# fall, e.g. a value forced by construction. A t-test says nothing about them: no verdict.
DETERMINISTIC = "deterministic"
FAMILY_METHOD = "Holm's step-down adjustment of the two-sided paired t-tests"


def paired_t(diffs: ArrayLike, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, half-width of the 95% t-interval and two-sided p-value of the one-sample t-test of
    mean = `threshold`, over the last axis of paired differences (n − 1 degrees of freedom).

    Fewer than 2 finite values: nan width and p. Zero spread: p = 0 off the threshold (the
    interval, ± 0, excludes it) and 1 on it. One row of differences gives numpy scalars.
    """
    d = np.asarray(diffs, dtype=float)
    n = np.isfinite(d).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.asarray(np.nansum(d, axis=-1) / n)
        sd = np.sqrt(np.nansum((d - mean[..., None]) ** 2, axis=-1) / (n - 1))
        se = sd / np.sqrt(n)
        half = stats.t.ppf(1 - ALPHA / 2, n - 1) * se
        t = np.abs(mean - threshold) / se
        p = 2 * stats.t.sf(t, n - 1)
    p = np.where((se == 0) & (mean == threshold), 1.0, p)
    few = n < 2
    # [()] turns a 0-d result (one row of differences) into a scalar.
    return mean[()], np.where(few, np.nan, half)[()], np.where(few, np.nan, p)[()]


def mean_ci(values: pd.Series | ArrayLike) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval over seeds (nan width for one seed)."""
    mean, half, _ = paired_t(np.asarray(pd.Series(values, dtype=float)))
    return float(mean), float(half)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values over the last axis: the k-th smallest of m is
    multiplied by m − k + 1, made non-decreasing in that order, and capped at 1. NaN (a row
    that could not be tested) stays NaN and does not count in m."""
    p = np.asarray(pvalues, dtype=float)
    m = np.isfinite(p).sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(np.isfinite(p), p, np.inf), axis=-1)  # NaN last
    ranked = np.take_along_axis(p, order, axis=-1)
    k = np.arange(p.shape[-1])
    scaled = np.minimum((m - k) * ranked, 1.0)
    # A running maximum that NaN (only at the end) cannot reach back into.
    stepped = np.maximum.accumulate(np.where(np.isfinite(scaled), scaled, -np.inf), axis=-1)
    stepped = np.where(np.isfinite(ranked), stepped, np.nan)
    adjusted = np.empty_like(stepped)
    np.put_along_axis(adjusted, order, stepped, axis=-1)
    return adjusted


def verdict(
    mean: ArrayLike, p: ArrayLike, paper_sign: ArrayLike, threshold: ArrayLike = 0.0
) -> np.ndarray | str:
    """The verdict from a (family-adjusted) p-value: reproduced when p ≤ ALPHA and the mean lies
    on the paper's side of `threshold` (paper_sign −1: below it, +1: above it), contradicted when
    p ≤ ALPHA on the other side, inconclusive otherwise (also where p is NaN)."""
    mean, p, sign = np.asarray(mean, float), np.asarray(p, float), np.asarray(paper_sign)
    side = np.sign((mean - np.asarray(threshold, float)) * sign)
    resolved = np.nan_to_num(p, nan=1.0) <= ALPHA
    out = np.where(
        resolved & (side > 0), REPRODUCED, np.where(resolved, CONTRADICTED, INCONCLUSIVE)
    )
    return str(out) if out.ndim == 0 else out


def family_verdicts(
    mean: ArrayLike,
    p: ArrayLike,
    paper_sign: ArrayLike,
    threshold: ArrayLike = 0.0,
    half: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts on a family of rows (the last axis; leading axes are separate families, e.g.
    simulated studies) at a family-wise error rate of ALPHA: Holm's adjustment of the rows'
    unadjusted p-values (`paired_t`), then `verdict` on the adjusted p. Returns both.

    `half` (the rows' interval half-widths): a row whose differences have zero spread is
    DETERMINISTIC, outside the adjustment (its p is no test) and without a verdict."""
    p = np.asarray(p, dtype=float)
    fixed = np.zeros(p.shape, bool) if half is None else np.asarray(half, float) == 0
    adjusted = holm(np.where(fixed, np.nan, p))
    verdicts = np.asarray(verdict(mean, adjusted, paper_sign, threshold), dtype=object)
    return adjusted, np.where(fixed, DETERMINISTIC, verdicts)


def prediction_half(values: ArrayLike) -> float:
    """Half-width of the 95% prediction interval for one more run, t·s·√(1 + 1/n) over n
    values: what a single published number is compared with (nan below 2 values)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return float("nan")
    t = stats.t.ppf(1 - ALPHA / 2, len(v) - 1)
    return float(t * v.std(ddof=1) * np.sqrt(1 + 1 / len(v)))


SEEDS_CAP = 10_000  # beyond this a number of seeds is no plan: reported as "> SEEDS_CAP"


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA) -> int | None:
    """The fewest seeds n ≥ 2 at which a paired difference of mean `effect` and standard
    deviation `sd` (over seeds) has a two-sided (1 − alpha) t-interval clear of zero:
    t(1 − alpha/2, n − 1)·sd/√n < |effect|. A point calculation: were the mean and spread to
    stay as measured, the interval would just clear zero (about even odds in a new study, not
    a power calculation). None where no number of seeds does (no effect, or above SEEDS_CAP)."""
    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0 or sd < 0:
        return None
    n = np.arange(2, SEEDS_CAP + 1)
    clear = stats.t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n) < abs(effect)
    return int(n[clear.argmax()]) if clear.any() else None
