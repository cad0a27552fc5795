"""Statistics over training seeds: the mean and its 95% t-interval."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats


def mean_ci(values: pd.Series) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval over seeds (nan width for one seed)."""
    values = pd.Series(values, dtype=float).dropna()
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values.iloc[0]), math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)
