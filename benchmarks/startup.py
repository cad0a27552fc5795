"""Start-up of a training and of an evaluation job: what a job does before its first step or
its first sample, in a fresh interpreter each time, as ratios measured in one run.

    python benchmarks/startup.py [--before REF] [--rounds 7]

Training: import the training module, load digits8, build the network, the EMA copy and the
optimizer. Evaluation: import the evaluation module, load the digits classifier (trained once
in the cache, $GCBENCH_CACHE or the default, if missing). With --before, the same two start-ups of the code at git REF (checked
out in a temporary worktree) run interleaved with this checkout's, so the ratio after / before
is measured under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = """
import copy
from gcbench.recipes import resolve, build_network
from gcbench.train import make_optimizer
from gcbench.data import TrainingData
c = resolve("digits8-gc", ["device=cpu"])
data = TrainingData(c.dataset)
net = build_network(c)
ema = copy.deepcopy(net)
make_optimizer(c, net.parameters())
"""
EVALUATE = """
import os
from gcbench import evaluate, digits_metric
from gcbench.assets import DEFAULT_CACHE
digits_metric.classifier(os.environ.get("GCBENCH_CACHE", DEFAULT_CACHE))
"""


def seconds(code: str, package_root: Path) -> float:
    """Wall seconds of `code` in a fresh interpreter that imports gcbench from package_root."""
    with tempfile.TemporaryDirectory() as shim:
        (Path(shim) / "gcbench").symlink_to(package_root / "gc")
        env = os.environ | {"PYTHONPATH": shim, "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="a git ref to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    trees = {"this checkout": ROOT}
    worktree = None
    if args.before:
        worktree = Path(tempfile.mkdtemp(prefix="gcbench-before-"))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
            check=True,
            capture_output=True,
        )
        trees[args.before] = worktree
    try:
        jobs = {
            (tree, job): code
            for tree in trees
            for job, code in (("train", TRAIN), ("evaluate", EVALUATE))
        }
        for (tree, _), code in jobs.items():  # warm-up: caches, the classifier's first training
            seconds(code, trees[tree])
        times = {key: [] for key in jobs}
        for _ in range(args.rounds):
            for (tree, job), code in jobs.items():
                times[tree, job].append(seconds(code, trees[tree]))
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True
            )
    median = {key: statistics.median(t) for key, t in times.items()}
    print(f"start-up, median of {args.rounds} fresh interpreters (s)")
    for job in ("train", "evaluate"):
        row = "  ".join(f"{tree}: {median[tree, job]:.2f}" for tree in trees)
        ratio = (
            f"  after / before {median['this checkout', job] / median[args.before, job]:.3f}"
            if args.before
            else ""
        )
        print(f"  {job:<9} {row}{ratio}")


if __name__ == "__main__":
    main()
