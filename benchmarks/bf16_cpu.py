"""Does bf16 autocast pay on this CPU? Speed and loss curve of digits8-gc, fp32 against bf16.

    python benchmarks/bf16_cpu.py [--seeds 0 1 2] [--steps 2000]

Trains each seed twice through the real loop (one thread each, the two precisions of a seed
side by side, so they share the load), then prints per run the CPU seconds per step and the
mean logged loss over the last quarter of training, and compares the bf16 - fp32 loss shift
with the spread of that mean over seeds. bf16 is worth using only if it is faster and the shift
is within seed noise (about 4 minutes on 2 cores at the defaults).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PRECISIONS = ("fp32", "bf16")


def train_one(seed: int, precision: str, steps: int, root: str) -> dict:
    import torch
    from gcbench import checkpoint
    from gcbench.recipes import resolve
    from gcbench.train import train

    torch.set_num_threads(1)
    overrides = [f"total_steps={steps}", f"seed={seed}", "device=cpu", "snapshot_every=1000000"]
    c = resolve("digits8-gc", [*overrides, f"bf16={precision == 'bf16'}"])
    run_dir = Path(root) / f"s{seed}-{precision}"
    train(c, run_dir, progress=False)
    rows = checkpoint.read_metrics(run_dir)
    late = [r["loss"] for r in rows if r["step"] > 0.75 * steps]
    done = checkpoint.read_json(run_dir / "done.json")
    return dict(
        seed=seed,
        precision=precision,
        cpu_per_step=done["cpu_seconds"] / steps,
        late_loss=statistics.mean(late),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(2) as pool:
        jobs = [(s, p, args.steps, root) for s in args.seeds for p in PRECISIONS]
        results = list(pool.map(train_one, *zip(*jobs, strict=True)))
    by = {(r["seed"], r["precision"]): r for r in results}
    print(f"digits8-gc, {args.steps} steps, 1 thread per run")
    print(
        f"{'seed':>4}  {'fp32 ms/step':>12}  {'bf16 ms/step':>12}  {'fp32 late loss':>14}  {'bf16 late loss':>14}"
    )
    for s in args.seeds:
        f, b = by[s, "fp32"], by[s, "bf16"]
        print(
            f"{s:>4}  {1e3 * f['cpu_per_step']:>12.2f}  {1e3 * b['cpu_per_step']:>12.2f}  "
            f"{f['late_loss']:>14.5f}  {b['late_loss']:>14.5f}"
        )
    speed = statistics.median(
        by[s, "bf16"]["cpu_per_step"] / by[s, "fp32"]["cpu_per_step"] for s in args.seeds
    )
    shift = [by[s, "bf16"]["late_loss"] - by[s, "fp32"]["late_loss"] for s in args.seeds]
    spread = statistics.stdev(by[s, "fp32"]["late_loss"] for s in args.seeds)
    print(f"bf16 / fp32 CPU time per step (median over seeds): {speed:.3f}")
    print(
        f"late-loss shift bf16 - fp32: {', '.join(f'{d:+.5f}' for d in shift)}; "
        f"seed spread (sd) of the fp32 late loss: {spread:.5f}"
    )


if __name__ == "__main__":
    main()
