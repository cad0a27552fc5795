"""Evaluation throughput: samples/s for generation and for Inception feature extraction.

    python benchmarks/eval_speed.py [--recipe cifar10-gc] [--n 512] [--offline-inception]

Generation uses the recipe's network at random initialisation (speed does not depend on the
weights). Feature extraction runs the clean-mode pipeline (clean-fid's 299x299 resize in worker
processes, then Inception) and the legacy_tensorflow one (resize inside the network); it needs
the Inception weights in the asset cache, or --offline-inception (clean mode only).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from gcbench import assets, features
from gcbench.data import DATASETS
from gcbench.recipes import build_network, resolve
from gcbench.sample import sample, to_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10-gc")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--offline-inception", action="store_true")
    parser.add_argument("--cache-dir", default=str(assets.DEFAULT_CACHE))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    c = resolve(args.recipe, [f"device={args.device}"])
    net = build_network(c).to(device).eval()
    shape = DATASETS[c.dataset].shape
    sample(net, args.batch_size, shape, batch_size=args.batch_size, device=device)  # warm-up
    start = time.perf_counter()
    images = to_uint8(sample(net, args.n, shape, batch_size=args.batch_size, device=device))
    generation = args.n / (time.perf_counter() - start)
    print(f"{args.recipe} on {device}: generation {generation:,.0f} samples/s (1-step)")

    modes = ["clean"] if args.offline_inception else ["clean", "legacy_tensorflow"]
    for mode in modes:
        if args.offline_inception:
            extractor = features.offline_inception(device, args.workers)
        else:
            path = assets.require("inception", assets.Path(args.cache_dir))
            extractor = features.standard_inception(path, mode, device, args.workers)
        extractor(images[: args.batch_size], batch_size=args.batch_size)  # warm-up
        start = time.perf_counter()
        feats = extractor(images, batch_size=args.batch_size)
        rate = args.n / (time.perf_counter() - start)
        assert np.isfinite(feats).all()
        print(
            f"  features ({mode}, {extractor.label}, {args.workers} resize workers): "
            f"{rate:,.1f} samples/s"
        )


if __name__ == "__main__":
    main()
