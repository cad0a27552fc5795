"""The verdict rule on synthetic paired differences: the paired t-test, Holm's adjustment, and
how often a study of many claims reports an effect that is not there."""

import math

import numpy as np
import pytest
from gcbench import stats
from scipy import stats as scipy_stats

RESOLVED = (stats.REPRODUCED, stats.CONTRADICTED)


def test_paired_t_is_scipys_two_sided_test_and_t_interval():
    diffs = np.array([-5.0, -6.0, -5.5, -3.0])
    mean, half, p = stats.paired_t(diffs)
    assert p == pytest.approx(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)
    lo, hi = scipy_stats.t.interval(0.95, 3, loc=diffs.mean(), scale=scipy_stats.sem(diffs))
    assert (mean, half) == pytest.approx((diffs.mean(), (hi - lo) / 2))
    # Against a threshold (GC's "+20% per step"), and with a missing seed dropped.
    _, _, p_at = stats.paired_t(np.array([0.1, 0.3, 0.25, math.nan]), threshold=0.2)
    assert p_at == pytest.approx(scipy_stats.ttest_1samp([0.1, 0.3, 0.25], 0.2).pvalue)
    assert math.isnan(stats.paired_t(np.array([1.0, math.nan]))[2])  # one pair: no test


def test_holm_against_a_hand_calculation():
    # Sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; then the
    # running maximum: 0.02, 0.03, 0.06, 0.06; back in the input order.
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # An untested row (NaN) is not counted in m and stays NaN; values are capped at 1.
    assert stats.holm([0.02, math.nan, 0.4]) == pytest.approx([0.04, math.nan, 0.4], nan_ok=True)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    # Each leading index is its own family.
    families = stats.holm([[0.5, 0.01], [0.01, 0.02]])
    np.testing.assert_allclose(families, [[0.5, 0.02], [0.02, 0.02]])


def test_a_row_on_the_boundary_of_one_family_is_inconclusive_in_a_larger_one():
    mean, p = np.array([-1.0, -1.0, 2.0]), np.array([0.03, 0.5, 0.001])
    adjusted, verdicts = stats.family_verdicts(mean, p, paper_sign=-1)
    assert adjusted == pytest.approx([0.06, 0.5, 0.003])
    assert list(verdicts) == [stats.INCONCLUSIVE, stats.INCONCLUSIVE, stats.CONTRADICTED]
    # Alone, the first row would be reproduced: the adjustment is what changed it.
    assert stats.verdict(-1.0, 0.03, -1) == stats.REPRODUCED


def _null_studies(studies=1_000, claims=20, pairs=3, seed=2024):
    """Paired differences of `studies` studies of `claims` claims each, under no effect."""
    return np.random.default_rng(seed).standard_normal((studies, claims, pairs))


def test_twenty_null_claims_stay_inconclusive_in_95_percent_of_studies_after_holm():
    mean, _, p = stats.paired_t(_null_studies())
    _, adjusted = stats.family_verdicts(mean, p, paper_sign=-1)
    unadjusted = stats.verdict(mean, p, paper_sign=-1)
    clean = ~np.isin(adjusted, RESOLVED).any(axis=-1)
    clean_unadjusted = ~np.isin(unadjusted, RESOLVED).any(axis=-1)
    # Holm's first step is Bonferroni's: 1 − (1 − 0.05 / 20)^20 ≈ 4.9% of studies err.
    assert clean.sum() >= 930
    # One 95% interval per row: 0.95^20 ≈ 36% of studies come out clean.
    assert 0.30 <= clean_unadjusted.mean() <= 0.42


def _measured_at(se: float, pairs: int = 10_000) -> np.ndarray:
    """Paired differences whose mean is exactly `se` standard errors below zero."""
    z = np.random.default_rng(7).standard_normal(pairs)
    z = (z - z.mean()) / z.std(ddof=1)
    return z - se / math.sqrt(pairs)


def _verdict_in_family(row: np.ndarray, size: int) -> str:
    """The row's verdict in a family of `size` rows whose other rows are null draws."""
    others = _null_studies(studies=1, claims=size - 1, pairs=3, seed=11)[0]
    mean, _, p = stats.paired_t(others)
    m_row, _, p_row = stats.paired_t(row)
    _, verdicts = stats.family_verdicts(np.append(m_row, mean), np.append(p_row, p), -1)
    return str(verdicts[0])


def test_a_real_effect_of_three_standard_errors_is_still_found():
    # In a family the size of the default study's (13 rows): Holm's first cut is
    # 0.05 / 13, about 2.89 standard errors with many pairs.
    assert _verdict_in_family(_measured_at(3.0), 13) == stats.REPRODUCED
    # At 20 rows the cut is 0.05 / 20, about 3.02 standard errors: the price of the family.
    assert _verdict_in_family(_measured_at(3.1), 20) == stats.REPRODUCED
    assert _verdict_in_family(_measured_at(2.9), 20) == stats.INCONCLUSIVE


def test_a_true_effect_of_three_standard_errors_among_19_null_claims():
    # The expected effect, not the measured one, is 3 standard errors: the measured one falls
    # either side of Holm's first cut (about 3.02), so about half the studies find it.
    diffs = _null_studies(pairs=100)
    diffs[:, 0] -= 3 / math.sqrt(100)
    mean, _, p = stats.paired_t(diffs)
    _, adjusted = stats.family_verdicts(mean, p, paper_sign=-1)
    found = (adjusted[:, 0] == stats.REPRODUCED).mean()
    found_unadjusted = (stats.verdict(mean, p, paper_sign=-1)[:, 0] == stats.REPRODUCED).mean()
    assert 0.40 <= found <= 0.55 and 0.80 <= found_unadjusted <= 0.90
    assert not (adjusted[:, 0] == stats.CONTRADICTED).any()  # never on the wrong side


def test_zero_spread_differences_are_deterministic_and_outside_the_family():
    # Three identical differences (± 0), as forced by construction: no verdict, no place in
    # Holm's m; the other row is adjusted as a family of one.
    diffs = np.array([[-0.255, -0.255, -0.255], [-5.0, -6.0, -5.5]])
    mean, half, p = stats.paired_t(diffs)
    adjusted, verdicts = stats.family_verdicts(mean, p, -1, half=half)
    assert list(verdicts) == [stats.DETERMINISTIC, stats.REPRODUCED]
    assert np.isnan(adjusted[0]) and adjusted[1] == pytest.approx(p[1])
    # Without the half-widths (the old call) the zero-spread row would be "reproduced".
    assert stats.family_verdicts(mean, p, -1)[1][0] == stats.REPRODUCED


def test_prediction_interval_for_one_more_run():
    values = [5.4, 5.5, 5.6]
    t = scipy_stats.t.ppf(0.975, 2)
    assert stats.prediction_half(values) == pytest.approx(t * 0.1 * np.sqrt(1 + 1 / 3))
    assert np.isnan(stats.prediction_half([5.0]))
