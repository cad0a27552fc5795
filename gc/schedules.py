"""Noise schedules, pure functions of the step and the hyper-parameters: iCT's discretisation
(Song & Dhariwal 2023, "Improved Techniques for Training Consistency Models", section 3.4-3.5)
and ECT's continuous-time mapping from t to r (Geng et al. 2024, docs/ect.md#ects-objective)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def karras_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> Tensor:
    """The n-point Karras grid, ascending: sigma_0 = sigma_min, ..., sigma_{n-1} = sigma_max."""
    if n < 2:
        raise ValueError(f"a sigma grid needs at least 2 points, got n={n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return ((lo + ramp * (hi - lo)) ** rho).float()


def num_sigma_points(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """The iCT curriculum N(k) in points (intervals + 1): s0 intervals, doubling every K'
    steps, capped at s1, with K' = floor(K / (log2 floor(s1/s0) + 1))."""
    k_prime = math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1))
    k_prime = max(k_prime, 1)  # runs shorter than the number of doublings (tests) double each step
    return min(s0 * 2 ** (step // k_prime), s1) + 1


def interval_probs(sigmas: Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> Tensor:
    """Probability of each of the N-1 intervals: the lognormal mass between its endpoints."""
    cdf = torch.erf((sigmas.double().log() - p_mean) / (math.sqrt(2) * p_std))
    mass = cdf[1:] - cdf[:-1]
    return (mass / mass.sum()).float()


def loss_weights(sigmas: Tensor) -> Tensor:
    """lambda_i = 1 / (sigma_{i+1} - sigma_i), one weight per interval."""
    return 1 / (sigmas[1:] - sigmas[:-1])


def ect_stage(step: int, stage_steps: int) -> int:
    """ECT's stage s: +1 every `stage_steps` (25k steps at batch 128); 0 forever if 0."""
    return step // stage_steps if stage_steps else 0


def ect_r(t: Tensor, stage: int, q: float = 2.0) -> Tensor:
    """r = max(0, t (1 - n(t) / q^(s+1))) with n(t) = 1 + 8 sigmoid(-t): the lower noise level
    of ECT's pair. t - r shrinks by q each stage; r = 0 (target: the data) is frequent early."""
    n = 1 + 8 * torch.sigmoid(-t)
    return (t * (1 - n / q ** (stage + 1))).clamp_min(0)
