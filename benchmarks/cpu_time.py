"""CPU time against wall time per training step, alone and with a busy process on the same core.

    python benchmarks/cpu_time.py [--recipe digits8-gc] [--rounds 5] [--steps 100]

Why: on a shared CPU a job's wall time depends on what runs beside it, so the claims time CPU
runs by the CPU seconds of the training loop (`cpu_seconds`, `step_cpu_time`; gc/measures.py).
This shows the two figures as training records them: it pins itself to one core, trains a
short run of the real recipe with `gcbench.train.train` (one thread) alone, then again with a
busy-loop child pinned to the same core, alternating over rounds, and reads `step_time` (wall)
and `step_cpu_time` (CPU) from each run's metrics.jsonl. The first log window (warm-up) is
dropped; each figure is the median over the rest. Each round prints both runs and their
ratios busy / alone, and the last line the medians over rounds. Expected: the wall figure about
doubles (the core is split in two); the CPU figure moves far less (what it does move is the
cost of sharing the core's caches with the neighbour, not the neighbour's time).

The benchmark and its busy child share one core, so it loads the machine like one
single-threaded job. A ratio from one run is what to read; absolute times move with the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from gcbench import checkpoint
from gcbench.recipes import resolve
from gcbench.train import train

WINDOW = 25  # steps per log window


@contextmanager
def busy_neighbour(core: int):
    """A child process spinning on `core` for the duration of the block."""
    code = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True:\n    pass\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)  # let it start spinning before the timed steps
        yield
    finally:
        child.kill()
        child.wait()


def per_step(recipe: str, steps: int, run_dir: Path) -> tuple[float, float]:
    """Median wall and CPU seconds per step of a fresh `steps`-step run, first window dropped."""
    overrides = [f"total_steps={steps}", f"log_every={WINDOW}", "device=cpu", "sample_grid=0"]
    overrides += [f"snapshot_every={steps}", f"checkpoint_every={steps}"]
    train(resolve(recipe, overrides), run_dir, progress=False)
    rows = checkpoint.read_metrics(run_dir)[1:]
    return (
        statistics.median(r["step_time"] for r in rows),
        statistics.median(r["step_cpu_time"] for r in rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="digits8-gc")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help=f"a multiple of {WINDOW}")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    args = parser.parse_args()
    if args.steps % WINDOW or args.steps < 2 * WINDOW:
        parser.error(f"--steps must be a multiple of {WINDOW}, at least {2 * WINDOW}")

    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    print(
        f"{args.recipe}, {torch.get_num_threads()} thread, core {args.core}, {args.rounds} rounds "
        f"x {args.steps} steps (median of the {WINDOW}-step windows after the first); ms/step"
    )
    print(f"{'round':<8}{'alone':>20}{'busy':>20}{'busy / alone':>20}")
    print(f"{'':<8}" + f"{'wall':>10}{'CPU':>10}" * 3)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            # Alternate the order, so that a drift in the machine's load hits both alike.
            times = {}
            for kind in ("alone", "busy") if k % 2 == 0 else ("busy", "alone"):
                neighbour = busy_neighbour(args.core) if kind == "busy" else nullcontext()
                with neighbour:
                    times[kind] = per_step(args.recipe, args.steps, Path(tmp) / f"{kind}{k}")
            rounds.append(times["alone"] + times["busy"])
            print(_line(str(k), *rounds[-1]))
    print(_line("median", *(statistics.median(r[i] for r in rounds) for i in range(4))))


def _line(label: str, wall_a: float, cpu_a: float, wall_b: float, cpu_b: float) -> str:
    times = "".join(f"{1000 * t:>10.1f}" for t in (wall_a, cpu_a, wall_b, cpu_b))
    return f"{label:<8}{times}{wall_b / wall_a:>9.2f}x{cpu_b / cpu_a:>9.2f}x"


if __name__ == "__main__":
    main()
