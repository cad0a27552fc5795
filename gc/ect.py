"""Easy Consistency Tuning (Geng et al. 2024; paper Table 2) and the EDM denoising loss that
pretrains the denoiser ECT starts from (Karras et al. 2022). docs/ect.md holds the facts.

ECT's pair shares one noise: x_t = e + t z and x_r = e + r z, with ln t ~ N(p_mean, p_std^2)
and r = ect_r(t, stage). The prediction is f(x_t, t); the target is the same online net, without
gradient and under the same dropout masks, at (x_r, r), or the endpoint itself where r = 0.
The loss is (sqrt(||f_t - f_r||^2 + c^2) - c) / (t - r). Couplings are iCT's, with
sigma_lo = r and sigma_hi = t; GC only where r > 0, since a pair at r = 0 has no model step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .couplings import Coupling, EndpointFn, Pair
from .distributed import SINGLE, Shard
from .losses import pseudo_huber
from .microbatch import Drawn
from .schedules import ect_r, ect_stage

# In training, ECT and EDM precondition as EDM's denoiser: the consistency form with sigma_min
# = 0. The sampler's shift (sigma_min = 0.003) is the config's, applied by default.
DENOISER = dict(sigma_min=0.0)


def _lognormal(n: int, p_mean: float, p_std: float, gen: torch.Generator, device) -> Tensor:
    return (p_mean + p_std * torch.randn(n, generator=gen, device=device)).exp()


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape(-1, *[1] * (like.ndim - 1))


def ect_step(net: nn.Module, coupling: Coupling, x: Tensor, **kwargs) -> tuple[Tensor, Pair]:
    """ECT's loss of one batch, not yet backpropagated (keywords: `ect_draw`'s)."""
    drawn = ect_draw(net, coupling, x, **kwargs)
    return drawn.mean_loss(), drawn.pair


def ect_draw(
    net: nn.Module,
    coupling: Coupling,
    x: Tensor,
    *,
    step: int,
    gen: torch.Generator,
    endpoint_fn: EndpointFn,
    p_mean: float,
    p_std: float,
    q: float,
    stage_steps: int,
    c: float,
    shard: Shard = SINGLE,
) -> Drawn:
    """ECT's draws and coupling on the whole batch; the network passes run later, on any rows
    (microbatch.py). As in the iCT step, the draws are made for the global batch and `x` is
    this rank's rows of it."""
    n, rows = x.shape[0] * shard.world, shard.rows(x.shape[0] * shard.world)
    t = _lognormal(n, p_mean, p_std, gen, x.device)[rows]
    z = torch.randn((n, *x.shape[1:]), generator=gen, device=x.device)[rows]
    u = torch.rand(n, generator=gen, device=x.device)[rows]
    r = ect_r(t, ect_stage(step, stage_steps), q)
    stepped = r > 0
    # u = 1 is never below mu <= 1: GC picks only pairs with a model step.
    u = torch.where(stepped, u, 1.0)
    pair = coupling(x, z, r, t, u, step=step, endpoint_fn=endpoint_fn)
    devices = [x.device.index or 0] if x.device.type == "cuda" else []

    def losses(k: slice) -> Tensor:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            # All the rows go through, so the dropout masks match the prediction's row for
            # row; rows with r = 0 are evaluated at t (never at sigma = 0) and replaced by e.
            target = net(pair.x_lo[k], torch.where(stepped, r, t)[k], **DENOISER)
            target = torch.where(_expand(stepped[k], target), target, pair.endpoint[k])
        pred = net(pair.x_hi[k], t[k], **DENOISER)
        return pseudo_huber(pred, target, c) / (t[k] - r[k])

    return Drawn(pair, losses, x.shape[0])


def denoising_step(net: nn.Module, x: Tensor, **kwargs) -> Tensor:
    """EDM's loss of one batch, not yet backpropagated (keywords: `denoising_draw`'s)."""
    return denoising_draw(net, x, **kwargs).mean_loss()


def denoising_draw(
    net: nn.Module,
    x: Tensor,
    *,
    gen: torch.Generator,
    p_mean: float,
    p_std: float,
    sigma_data: float,
    shard: Shard = SINGLE,
) -> Drawn:
    """EDM's loss: mean of lambda(sigma) ||D(x + sigma z, sigma) - x||^2, ln sigma ~
    N(p_mean, p_std^2) (EDM: -1.2, 1.2), lambda = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2.
    The draws are made here; the passes run later, on any rows (microbatch.py)."""
    n, rows = x.shape[0] * shard.world, shard.rows(x.shape[0] * shard.world)
    sigma = _lognormal(n, p_mean, p_std, gen, x.device)[rows]
    z = torch.randn((n, *x.shape[1:]), generator=gen, device=x.device)[rows]
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2

    def losses(k: slice) -> Tensor:
        denoised = net(x[k] + _expand(sigma[k], x[k]) * z[k], sigma[k], **DENOISER)
        return weight[k] * (denoised - x[k]).square().flatten(1).sum(1)

    return Drawn(None, losses, x.shape[0])
