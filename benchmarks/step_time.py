"""Training-step time of GC against IC, as ratios measured in one run on one model and batch.

    python benchmarks/step_time.py [--recipe digits8-gc] [--rounds 7] [--steps 5]

Compares, on the same network, batch and noise:
  IC                 the iCT step
  GC mu=0.5          gcbench's GC: endpoints predicted for the GC half of the batch only
  GC mu=0.5 (whole)  the official code's way: endpoints predicted for the whole batch, the IC
                     part then discarded
  IC, per-tensor Lion  the IC step with lion-pytorch's own step (one update per parameter
                     tensor), as gcbench took it before its multi-tensor Lion (Lion recipes only)
Variants are interleaved round by round and the median per-step time is reported, so load
from other processes on a shared machine affects all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass

import torch
from gcbench.couplings import GeneratorInducedCoupling, make_pair
from gcbench.data import TrainingData
from gcbench.losses import LOSSES
from gcbench.recipes import build_network, resolve
from gcbench.schedules import interval_probs, karras_sigmas, loss_weights
from gcbench.train import in_eval_mode, make_optimizer, training_step
from lion_pytorch import Lion


@dataclass(frozen=True)
class WholeBatchGC:
    """GC as the official code computes it: predict every endpoint, keep the GC ones."""

    mu: float = 0.5

    def __call__(self, x, z, sigma_lo, sigma_hi, u, *, step, endpoint_fn):
        is_gc = u < self.mu
        with torch.no_grad():
            predicted = endpoint_fn(x + sigma_lo.reshape(-1, 1, 1, 1) * z, sigma_lo)
        e = torch.where(is_gc.reshape(-1, 1, 1, 1), predicted, x)
        return make_pair(e, z, sigma_lo, sigma_hi, is_gc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="digits8-gc")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    c = resolve(args.recipe, [*args.overrides, f"device={args.device}"])
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_network(c).to(device).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    optimizer = make_optimizer(c, net.parameters())
    before = (
        Lion(net.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)) if c.optimizer == "lion" else None
    )
    x = TrainingData(c.dataset, c.data_dir).batch(0, c.batch_size, 0, device)
    s = karras_sigmas(c.s1 + 1, c.sigma_min, c.sigma_max)
    grid = (s.to(device), interval_probs(s).to(device), loss_weights(s).to(device))
    variants = {
        "IC": GeneratorInducedCoupling(mu=0.0),
        "GC mu=0.5": GeneratorInducedCoupling(mu=0.5),
        "GC mu=0.5 (whole batch)": WholeBatchGC(mu=0.5),
    }

    def run(coupling, steps: int, optimizer=optimizer) -> float:
        gen = torch.Generator(device).manual_seed(0)
        start = time.perf_counter()
        for _ in range(steps):
            loss, _ = training_step(
                net,
                coupling,
                LOSSES[c.loss],
                x,
                *grid,
                step=0,
                gen=gen,
                endpoint_fn=in_eval_mode(ema),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    jobs = {name: (coupling, optimizer) for name, coupling in variants.items()}
    if before is not None:
        jobs["IC, per-tensor Lion"] = (variants["IC"], before)
    for coupling, opt in jobs.values():  # warm-up
        run(coupling, 2, opt)
    times = {name: [] for name in jobs}
    for _ in range(args.rounds):
        for name, (coupling, opt) in jobs.items():
            times[name].append(run(coupling, args.steps, opt))
    median = {name: statistics.median(t) for name, t in times.items()}

    params = sum(p.numel() for p in net.parameters())
    print(
        f"recipe {args.recipe} {' '.join(args.overrides)}: {params:,} parameters, "
        f"batch {c.batch_size}, {device}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    for name, t in median.items():
        print(f"  {name:<24} {1000 * t:8.1f} ms/step")
    ic = median["IC"]
    print(f"GC mu=0.5 / IC                  {median['GC mu=0.5'] / ic:.3f}  (target <= 1.15)")
    print(f"GC whole batch / IC             {median['GC mu=0.5 (whole batch)'] / ic:.3f}")
    whole = median["GC mu=0.5 (whole batch)"]
    print(f"GC mu=0.5 / GC whole batch      {median['GC mu=0.5'] / whole:.3f}")
    if before is not None:
        print(
            f"IC / IC with per-tensor Lion    {ic / median['IC, per-tensor Lion']:.3f}  (after / before)"
        )


if __name__ == "__main__":
    main()
