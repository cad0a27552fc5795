import math

import pytest
import torch
from gcbench.ema import ema_decay
from gcbench.losses import pseudo_huber, pseudo_huber_c, squared_l2
from gcbench.schedules import interval_probs, karras_sigmas, loss_weights, num_sigma_points


@pytest.mark.parametrize(
    ("step", "points"), [(0, 11), (12_499, 11), (12_500, 21), (87_499, 641), (87_500, 1281)]
)
def test_curriculum_matches_ict_for_100k_steps(step, points):
    assert num_sigma_points(step, 100_000) == points


def test_curriculum_is_capped_at_s1():
    assert num_sigma_points(99_999, 100_000) == 1281
    assert num_sigma_points(10**9, 100_000, s0=10, s1=160) == 161


def test_karras_grid_endpoints_and_formula():
    s = karras_sigmas(11)
    assert s.shape == (11,)
    assert torch.all(s[1:] > s[:-1])
    assert s[0].item() == pytest.approx(0.002, rel=1e-6)
    assert s[-1].item() == pytest.approx(80.0, rel=1e-6)
    lo, hi = 0.002 ** (1 / 7), 80 ** (1 / 7)
    assert s[3].item() == pytest.approx((lo + 0.3 * (hi - lo)) ** 7, rel=1e-6)


def test_interval_probs_follow_the_lognormal():
    s = karras_sigmas(21)
    p = interval_probs(s)
    assert p.shape == (20,)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    cdf = [math.erf((math.log(v) + 1.1) / (math.sqrt(2) * 2.0)) for v in s.tolist()]
    mass = [b - a for a, b in zip(cdf[:-1], cdf[1:], strict=True)]
    assert p[7].item() == pytest.approx(mass[7] / sum(mass), rel=1e-5)


def test_loss_weights_are_inverse_interval_widths():
    s = karras_sigmas(11)
    w = loss_weights(s)
    assert w.shape == (10,)
    assert torch.allclose(w * (s[1:] - s[:-1]), torch.ones(10))


def test_pseudo_huber_constant_and_values():
    a = torch.zeros(2, 3, 32, 32)
    assert pseudo_huber_c(a) == pytest.approx(0.0299, abs=1e-4)
    b = a.clone()
    b[1, 0, 0, 0] = 3.0
    c = pseudo_huber_c(a)
    assert torch.allclose(pseudo_huber(a, b), torch.tensor([0.0, math.sqrt(9 + c * c) - c]))
    assert torch.equal(squared_l2(a, b), torch.tensor([0.0, 9.0]))


def test_ema_decay_follows_the_warmup_formula():
    assert ema_decay(10_000) == pytest.approx(0.99785, abs=1e-5)
    assert ema_decay(100_000) == pytest.approx(0.99954, abs=1e-5)
    assert ema_decay(10**12) == 0.9999
