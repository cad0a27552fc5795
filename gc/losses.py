"""Per-sample distances d(a, b) between the online prediction and the target.
Each returns one value per sample (shape (B,)); the training step weights and averages them."""

from __future__ import annotations

import math

from torch import Tensor


def _squared_norm(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().flatten(1).sum(1)


def pseudo_huber_c(a: Tensor) -> float:
    """c = 0.00054 sqrt(d) for d = C*H*W dimensions (iCT section 3.3): 0.0299 at 32x32x3."""
    return 0.00054 * math.sqrt(a[0].numel())


def pseudo_huber(a: Tensor, b: Tensor, c: float | None = None) -> Tensor:
    """iCT's pseudo-Huber metric, sqrt(||a - b||^2 + c^2) - c (Song & Dhariwal 2023, eq. 7),
    with iCT's c unless given. c = 0 is the unsquared L2 norm (ECT on CIFAR-10)."""
    c = pseudo_huber_c(a) if c is None else c
    return (_squared_norm(a, b) + c * c).sqrt() - c


def squared_l2(a: Tensor, b: Tensor) -> Tensor:
    """||a - b||^2, the original consistency-training metric (used for the 2-D toy)."""
    return _squared_norm(a, b)


LOSSES = {"pseudo_huber": pseudo_huber, "l2": squared_l2}
