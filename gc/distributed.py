"""Data-parallel training inside one job: which rank this process is, and the few collectives
the training loop needs.

One process per GPU. Every rank draws the random numbers of the whole global batch from the
same generator and keeps its own rows (`Shard.rows`), so a run on W ranks computes, sample for
sample, what one process computes on the same global batch; DDP averages the gradients. The one
exception is batch OT (variants ot, gc_ot), which pairs data and noise within each rank's rows,
as per-GPU minibatch OT does. Only rank 0 writes files. With one process every helper is a no-op and nothing is initialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, global_batch: int) -> slice:
        """This rank's rows of a global batch (the batch size is checked to divide evenly)."""
        local = local_batch(global_batch, self.world)
        return slice(self.rank * local, (self.rank + 1) * local)

    def sum(self, t: Tensor) -> Tensor:
        """The sum of `t` over all ranks (a copy; `t` is unchanged)."""
        t = t.clone()
        if self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if `flag` is true on any rank: all ranks stop at the same step."""
        if self.world == 1:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0)

    def gather(self, obj) -> list:
        """`obj` from every rank, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


SINGLE = Shard()  # one process: every helper is a no-op


def local_batch(global_batch: int, world: int) -> int:
    if global_batch % world:
        raise ValueError(
            f"batch_size={global_batch} does not divide over {world} GPUs; the global batch is "
            f"kept as configured, so use a multiple of {world} or another GPU count"
        )
    return global_batch // world


def init_from_submitit(device: str) -> Shard:
    """Join the job's process group when submitit runs several tasks (one per GPU): rank, world
    size and the rendezvous address come from submitit's environment."""
    import submitit

    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (e.g. called directly): one process
        return SINGLE
    if env.num_tasks == 1:
        return SINGLE
    # Pin this rank to its GPU before anything initialises CUDA (CUDA_VISIBLE_DEVICES is read
    # once), then ask whether there is one.
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=device != "cpu")
    cuda = device != "cpu" and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def close(shard: Shard) -> None:
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
