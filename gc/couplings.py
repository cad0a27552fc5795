"""Couplings: which endpoint e and which noise z make up one training pair.

Every coupling returns x_lo = e + sigma_i z and x_hi = e + sigma_{i+1} z with the same z, and
the endpoint it used, so the transport cost E||e - z||^2 can be logged (the paper's Fig. 3).

- IC (iCT): e = x, z independent of x.
- OT: z re-paired with x inside the batch by an exact assignment minimising sum ||x - z||^2.
- GC (Issenhuth et al. 2024, section 3): for a fraction mu of the batch, e is the endpoint the
  current model predicts from x_sigma_i = x + sigma_i z, so the pair lies on a path the generator
  itself induces.
- GC+OT: OT re-pairing first, then GC.

Couplings are pure: their randomness comes in as arguments (z, and u ~ U[0, 1) per sample, which
picks the GC subset), drawn by the training step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

EndpointFn = Callable[[Tensor, Tensor], Tensor]  # f(x, sigma): the consistency function


@dataclass(frozen=True)
class Pair:
    x_lo: Tensor  # e + sigma_i z
    x_hi: Tensor  # e + sigma_{i+1} z
    endpoint: Tensor  # e
    noise: Tensor  # z, after any re-pairing
    is_gc: Tensor  # (B,) bool: which samples use a generator-induced endpoint

    def transport_cost(self) -> Tensor:
        """||e - z||^2 per sample."""
        return (self.endpoint - self.noise).square().flatten(1).sum(1)


def _expand(sigma: Tensor, like: Tensor) -> Tensor:
    return sigma.reshape(-1, *[1] * (like.ndim - 1))


def make_pair(e: Tensor, z: Tensor, sigma_lo: Tensor, sigma_hi: Tensor, is_gc: Tensor) -> Pair:
    return Pair(e + _expand(sigma_lo, e) * z, e + _expand(sigma_hi, e) * z, e, z, is_gc)


def ot_permutation(x: Tensor, z: Tensor) -> Tensor:
    """perm such that pairing x[k] with z[perm[k]] minimises sum_k ||x[k] - z[perm[k]]||^2."""
    from scipy.optimize import linear_sum_assignment  # here: IC and GC jobs never load it

    cost = torch.cdist(x.flatten(1).double(), z.flatten(1).double()).square()
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(cols, device=z.device)


def generator_induced_endpoint(
    x: Tensor, z: Tensor, sigma: Tensor, is_gc: Tensor, endpoint_fn: EndpointFn
) -> Tensor:
    """The GC coupling: e = stopgrad f(x + sigma_i z, sigma_i) where is_gc, else e = x.

    The prediction uses the same z as the pair and the lower noise level sigma_i, and is
    computed only for the GC subset of the batch (the official code predicts the whole batch
    and then discards the IC part: same values, more work).
    """
    if not bool(is_gc.any()):
        return x
    with torch.no_grad():
        xs, zs, ss = x[is_gc], z[is_gc], sigma[is_gc]
        predicted = endpoint_fn(xs + _expand(ss, xs) * zs, ss)
    e = x.clone()
    e[is_gc] = predicted.to(x.dtype)
    return e


@dataclass(frozen=True)
class IndependentCoupling:
    """iCT: the endpoint is the data point itself."""

    def __call__(self, x, z, sigma_lo, sigma_hi, u, *, step, endpoint_fn) -> Pair:
        return make_pair(x, z, sigma_lo, sigma_hi, torch.zeros_like(sigma_lo, dtype=torch.bool))


@dataclass(frozen=True)
class BatchOTCoupling:
    """Minibatch optimal transport: re-pair x and z, then proceed as IC."""

    def __call__(self, x, z, sigma_lo, sigma_hi, u, *, step, endpoint_fn) -> Pair:
        z = z[ot_permutation(x, z)]
        return make_pair(x, z, sigma_lo, sigma_hi, torch.zeros_like(sigma_lo, dtype=torch.bool))


@dataclass(frozen=True)
class GeneratorInducedCoupling:
    """GC with mu = the fraction of GC samples (the paper's meaning; the official code's flag
    `mix_gen_induced_traj` is the IC fraction instead). GC is off before `start_step`."""

    mu: float = 0.5  # the paper's (recipes.GC_MU; this module imports nothing of the project)
    start_step: int = 0
    ot: bool = False

    def __call__(self, x, z, sigma_lo, sigma_hi, u, *, step, endpoint_fn) -> Pair:
        if self.ot:
            z = z[ot_permutation(x, z)]
        is_gc = u < self.mu
        if step < self.start_step:
            is_gc.zero_()
        e = generator_induced_endpoint(x, z, sigma_lo, is_gc, endpoint_fn)
        return make_pair(e, z, sigma_lo, sigma_hi, is_gc)


Coupling = IndependentCoupling | BatchOTCoupling | GeneratorInducedCoupling

# Variant name -> coupling. The CLI and the recipes take their choices from here.
COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "ic": lambda mu, start_step: IndependentCoupling(),
    "ot": lambda mu, start_step: BatchOTCoupling(),
    "gc": lambda mu, start_step: GeneratorInducedCoupling(mu, start_step),
    "gc_ot": lambda mu, start_step: GeneratorInducedCoupling(mu, start_step, ot=True),
}
