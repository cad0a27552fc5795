"""Exponential moving average of the weights, as the official code's ema-pytorch 0.2.3
(update_every=5, update_after_step=0, inv_gamma=1, power=2/3)."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay(step: int, beta: float = 0.9999) -> float:
    """min(beta, 1 - (1 + k)^(-2/3)): 0.99785 at k = 10 000, 0.99954 at k = 100 000."""
    return min(beta, 1 - (1 + step) ** (-2 / 3))


@torch.no_grad()
def update_ema(
    ema: nn.Module, net: nn.Module, step: int, beta: float, every: int, warmup: bool = True
) -> None:
    """Call after optimizer step k = 0, 1, 2, ...: copy at k = 0, average when k % every == 0.
    Without `warmup` (ECT) the decay is beta from the first step and nothing is copied: the EMA
    starts as the pretrained weights and keeps beta^k of them."""
    if step % every and step:
        return
    if warmup:
        weight = 1.0 if step == 0 else 1 - ema_decay(step, beta)
    else:
        weight = 1 - beta
    for e, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
        if e.is_floating_point():
            e.lerp_(p, weight)
        else:
            e.copy_(p)
