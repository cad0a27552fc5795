"""Gradient accumulation: one optimizer step over a batch too large for one GPU's memory.

Everything random about a batch (sigma indices, noise, the GC subset, the OT re-pairing) is
drawn on the whole batch first, exactly as without accumulation; only the network's passes run
on micro-batches of `batch_per_gpu` rows. Each micro-batch backpropagates the sum of its
per-sample losses divided by the whole batch's row count, so the gradients add up to the
gradient of the batch's mean loss whatever the micro-batch sizes (the last one may be smaller).
Per-sample losses (pseudo-Huber, ECT's 1/(t - r) weights) are computed row by row, so they do
not depend on how the rows are split. Dropout masks are drawn per pass, so with dropout > 0 an
accumulated step drops other units than an unsplit one (the same distribution, not the same
draws).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .couplings import EndpointFn, Pair


@dataclass(frozen=True)
class Drawn:
    """One batch with its draws and coupling made; `losses(rows)` runs the network passes on
    those rows and returns their per-sample weighted losses (shape (len(rows),))."""

    pair: Pair | None  # None for EDM's denoising loss, which pairs nothing
    losses: Callable[[slice], Tensor]
    size: int  # rows of this rank's batch

    def mean_loss(self) -> Tensor:
        """The batch's mean loss in one pass (no accumulation)."""
        return self.losses(slice(None)).mean()


def row_chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` rows covering 0..n; size 0 means one slice."""
    size = size or n
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def accumulate(
    model: nn.Module,
    drawn: Drawn,
    batch_per_gpu: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> Tensor:
    """Backpropagate the batch's mean loss micro-batch by micro-batch; returns that loss.

    Under DDP only the last micro-batch synchronises the gradients (`no_sync` before): one
    all-reduce per step, as without accumulation.
    """
    chunks = row_chunks(drawn.size, batch_per_gpu)
    no_sync = getattr(model, "no_sync", None)
    parts = []
    for k, rows in enumerate(chunks):
        last = k == len(chunks) - 1
        with nullcontext() if last or no_sync is None else no_sync():
            with autocast():
                # Weighted by the micro-batch's share of rows: sum / n, never a mean per part.
                part = drawn.losses(rows).sum() / drawn.size
            part.float().backward()
        parts.append(part.detach().float())
    return torch.stack(parts).sum()


def chunked(fn: EndpointFn, size: int) -> EndpointFn:
    """`fn` applied `size` rows at a time (the GC endpoint prediction, without gradient, on a
    batch that would not fit at once); `fn` itself when size is 0."""
    if not size:
        return fn

    def apply(x: Tensor, sigma: Tensor) -> Tensor:
        parts = [fn(x[rows], sigma[rows]) for rows in row_chunks(x.shape[0], size)]
        return torch.cat(parts) if parts else fn(x, sigma)

    return apply
