"""The optimizers a config names, built for its parameters.

Lion is lion-pytorch's (its state_dict format, its defaults), with the step taken on all
parameters at once through torch's `_foreach` ops: the same arithmetic (value for value on the CPU), in a
handful of calls instead of about ten per parameter tensor, which on a CPU-sized network is a
visible share of each step (benchmarks/step_time.py).
"""

from __future__ import annotations

import torch
from lion_pytorch import Lion

from .recipes import TrainConfig


class ForeachLion(Lion):
    """lion-pytorch's Lion (decoupled weight decay and Triton off) with a multi-tensor step:
    p <- p (1 - lr wd) - lr sign(beta1 m + (1 - beta1) g);  m <- beta2 m + (1 - beta2) g.
    Value for value lion-pytorch's on the CPU, where `_foreach` ops run the per-tensor ones;
    CUDA's fused multi-tensor kernels may round differently."""

    def __init__(self, params, **kwargs):
        if kwargs.get("use_triton") or kwargs.get("decoupled_weight_decay"):
            raise ValueError("ForeachLion implements Lion's plain step only")
        super().__init__(params, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            moments = [self.state[p]["exp_avg"] for p in params]
            lr, wd, (beta1, beta2) = group["lr"], group["weight_decay"], group["betas"]
            if wd:  # x * 1.0 is x: skipping it changes no value
                torch._foreach_mul_(params, 1.0 - lr * wd)
            update = torch._foreach_mul(moments, beta1)
            torch._foreach_add_(update, grads, alpha=1.0 - beta1)
            torch._foreach_sign_(update)
            torch._foreach_add_(params, update, alpha=-lr)
            torch._foreach_mul_(moments, beta2)
            torch._foreach_add_(moments, grads, alpha=1.0 - beta2)
        return loss


def make_optimizer(c: TrainConfig, params) -> torch.optim.Optimizer:
    betas = (c.beta1, c.beta2)
    if c.optimizer == "lion":
        return ForeachLion(params, lr=c.lr, betas=betas, weight_decay=0.0)
    # torch's Adam and RAdam take the multi-tensor (foreach) path by default.
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=betas)
    return torch.optim.RAdam(params, lr=c.lr, betas=betas)
