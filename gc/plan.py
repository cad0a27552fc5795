"""What a study will cost before it is submitted: runs, steps, FLOPs, GPU-hours, disk.

FLOPs are counted, not guessed: `torch.utils.flop_counter` runs each recipe's real network on
the meta device (no memory, no arithmetic) for one sample, and the training step is assembled
from what `train.training_step` runs per sample:

    target forward (no grad) + prediction forward and backward + mu x endpoint forward (GC)

times the batch size (every counted operation is per sample). The Lion/Adam update and the EMA
are elementwise and not counted; neither is batch OT's assignment (CPU work, not FLOPs).

Seconds come from FLOPs divided by a throughput: a measured one when `benchmarks/
throughput.json` exists (written by `benchmarks/gpu_throughput.py --write`), otherwise a stated
assumption (GPU model, dense peak, utilisation) that every output labels as such. Its format:

    {"gpu": "NVIDIA H100 80GB HBM3", "date": "...",
     "train": [{"recipe": "cifar10-ic", "batch_size": 512, "tf32": false, "bf16": false,
                "images_per_s": 1234.5}, ...],
     "features_samples_per_s": 2345.6, "inception": "<which Inception was timed>"}

A run's measured rate gives an effective FLOP/s (its counted FLOPs per second); other networks
at the same precision are scaled by their FLOPs.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import study
from .catalog import DATASETS, FID_MODES, PAPER_DATASETS
from .recipes import TrainConfig, build_network, precision

THROUGHPUT_FILE = Path("benchmarks/throughput.json")
BYTES_PER_VALUE = 4  # weights, EMA and optimizer moments are kept in fp32
OPTIMIZER_MOMENTS = {"lion": 1, "adam": 2, "radam": 2}
INCEPTION_RES = 299  # clean-fid resizes every image to 299 x 299 for Inception


@dataclass(frozen=True)
class Assumption:
    """The throughput used when nothing was measured. The paper trains in fp32, where an A100
    runs without tensor cores; 40% of the dense peak is a typical sustained share for a
    convolutional UNet at these batch sizes."""

    gpu: str = "NVIDIA A100-SXM4-80GB"
    peak_flops: tuple[tuple[str, float], ...] = (
        ("fp32", 19.5e12),
        ("tf32", 156e12),
        ("bf16", 312e12),
    )
    utilisation: float = 0.4

    def flops_per_s(self, precision: str) -> float:
        return dict(self.peak_flops)[precision] * self.utilisation

    def describe(self, precision: str) -> str:
        peak = dict(self.peak_flops)[precision]
        return (
            f"ASSUMED, not measured: {self.gpu}, {precision} dense peak {peak / 1e12:g} TFLOP/s "
            f"at {self.utilisation:.0%} utilisation = {self.flops_per_s(precision) / 1e12:.3g} "
            f"TFLOP/s (measure with benchmarks/gpu_throughput.py --write {THROUGHPUT_FILE})"
        )


def count_flops(fn) -> int:
    """FLOPs of everything `fn()` runs (matmuls, convolutions, attention), forward and backward."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _sample(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.zeros(1, *shape, device="meta")


# The fields that shape a network; dropout, mu, seeds and the rest do not change its FLOPs.
NETWORK_FIELDS = ("network", "model_channels", "channel_mult", "num_blocks", "attn_resolutions")
NETWORK_FIELDS += ("mlp_hidden", "mlp_layers", "mlp_emb_channels")


def network_costs(c: TrainConfig) -> dict:
    """Per sample: forward FLOPs, forward + backward FLOPs, and the parameter count of `c`'s
    network, counted on the meta device."""
    return _network_costs(c.dataset, tuple(getattr(c, f) for f in NETWORK_FIELDS))


@functools.cache  # once per distinct network: a paper UNet takes seconds
def _network_costs(dataset: str, fields: tuple) -> dict:
    named = dict(zip(NETWORK_FIELDS, fields, strict=True))
    no_dropout = tuple(0.0 for _ in named["channel_mult"])  # same FLOPs, one cache entry
    c = TrainConfig(dataset=dataset, dropout=no_dropout, **named)
    with torch.device("meta"):
        net = build_network(c).train()
    shape = DATASETS[dataset].shape
    sigma = torch.ones(1, device="meta")
    with torch.no_grad():
        forward = count_flops(lambda: net(_sample(shape), sigma))
    forward_backward = count_flops(lambda: net(_sample(shape), sigma).sum().backward())
    params = sum(p.numel() for p in net.parameters())
    return dict(forward=forward, forward_backward=forward_backward, params=params)


def step_flops(c: TrainConfig) -> int:
    """FLOPs of one training step at `c.batch_size` (the module docstring's sum)."""
    net = network_costs(c)
    if c.objective == "edm":  # denoising pretraining: one forward and backward
        return c.batch_size * net["forward_backward"]
    gc = c.mu if c.coupling.startswith("gc") else 0.0  # the endpoint runs on the GC subset only
    return round(c.batch_size * (net["forward"] * (1 + gc) + net["forward_backward"]))


@functools.cache
def feature_flops(dataset: str) -> int:
    """FLOPs of one sample's features: Inception for the paper's datasets (as clean-fid runs
    it, at 299 x 299), the digits classifier for digits8, none for the 2-D toy."""
    if dataset in PAPER_DATASETS:
        import torchvision

        with torch.device("meta"):
            net = torchvision.models.inception_v3(
                weights=None, aux_logits=False, init_weights=False
            ).eval()
        x = torch.zeros(1, 3, INCEPTION_RES, INCEPTION_RES, device="meta")
    elif dataset == "digits8":
        from .digits_metric import DigitsCNN

        with torch.device("meta"):
            net = DigitsCNN().eval()
        x = _sample(DATASETS[dataset].shape)
    else:
        return 0
    with torch.no_grad():
        return count_flops(lambda: net(x))


def snapshot_steps(c: TrainConfig, steps: int) -> int:
    """How many snapshots a run of `steps` steps keeps: every snapshot_every, and the last."""
    return steps // c.snapshot_every + (1 if steps % c.snapshot_every else 0)


def disk_bytes(c: TrainConfig, params: int, steps: int) -> int:
    """Weights a finished run keeps: each snapshot (online + EMA) and the resume state (online,
    EMA and the optimizer's moments). Logs and evaluation records are kilobytes."""
    state = (2 + OPTIMIZER_MOMENTS[c.optimizer]) * params
    return BYTES_PER_VALUE * (2 * params * snapshot_steps(c, steps) + state)


@dataclass(frozen=True)
class Throughput:
    """Training FLOP/s per precision, the feature extractor's samples/s, and what they rest on."""

    flops_per_s: dict[str, float]
    features_samples_per_s: float | None
    source: dict[str, str]  # precision -> how its rate was obtained

    def rate(self, precision: str) -> tuple[float, str]:
        if precision in self.flops_per_s:
            return self.flops_per_s[precision], self.source[precision]
        return Assumption().flops_per_s(precision), Assumption().describe(precision)


def load_throughput(path: str | Path = THROUGHPUT_FILE) -> Throughput:
    """The measured throughput file, or the assumption when it does not exist."""
    path = Path(path)
    if not path.exists():
        return Throughput({}, None, {})
    measured = json.loads(path.read_text())
    by_precision: dict[str, list[float]] = {}
    for entry in measured["train"]:
        c = TrainConfig(**_config_fields(entry))
        seconds_per_step = entry["batch_size"] / entry["images_per_s"]
        by_precision.setdefault(precision(c), []).append(step_flops(c) / seconds_per_step)
    source = {
        p: (
            f"MEASURED on {measured['gpu']} ({measured.get('date', 'date not recorded')}, "
            f"{path}): {statistics.median(v) / 1e12:.3g} TFLOP/s effective, median of "
            f"{len(v)} recipe(s); other networks scaled by their counted FLOPs"
        )
        for p, v in by_precision.items()
    }
    flops = {p: statistics.median(v) for p, v in by_precision.items()}
    return Throughput(flops, measured.get("features_samples_per_s"), source)


def _config_fields(entry: dict) -> dict:
    from .recipes import RECIPES

    base = {k: v for k, v in RECIPES[entry["recipe"]].items()}
    base.update(batch_size=entry["batch_size"], tf32=entry["tf32"], bf16=entry["bf16"])
    return base


def _eval_settings(config: dict, experiment: str) -> dict:
    """The experiment's evaluation settings with the defaults `study.eval_args` applies."""
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    return dict(
        n=e.get("n", 50_000),
        curve_n=e.get("curve_n", 10_000),
        steps=list(e.get("steps", [1])),
        weights=list(e.get("weights", ["ema"])),
        modes=list(e.get("modes", FID_MODES)),
    )


def eval_seconds(
    c: TrainConfig, steps: int, settings: dict, throughput: Throughput
) -> tuple[float, float]:
    """(FLOPs, seconds) of a run's evaluation: the curve (curve_n samples, 1-step, at every
    snapshot) and the final metrics (n samples per sampling-step count), for each weights kind;
    each sample is generated (one forward per sampling step) and featurised once per mode."""
    forward = network_costs(c)["forward"]
    passes = 1 if c.dataset not in PAPER_DATASETS else len(settings["modes"])
    samples_by_steps = [(settings["curve_n"] * snapshot_steps(c, steps), 1)]
    samples_by_steps += [(settings["n"], s) for s in settings["steps"]]
    samples = sum(n for n, _ in samples_by_steps) * len(settings["weights"])
    generate = sum(n * s * forward for n, s in samples_by_steps) * len(settings["weights"])
    features = samples * passes * feature_flops(c.dataset)
    flops_per_s, _ = throughput.rate("fp32")  # evaluation runs in fp32 (runtime.fp32)
    seconds = generate / flops_per_s
    if throughput.features_samples_per_s and c.dataset in PAPER_DATASETS:
        seconds += samples * passes / throughput.features_samples_per_s
    else:
        seconds += features / flops_per_s
    return generate + features, seconds


def run_plan(run: study.Run, settings: dict, throughput: Throughput, gpus: int) -> dict:
    """One run's row: its steps, FLOPs, GPU-hours (training and evaluation), wall-clock on
    `gpus` GPUs (ideal data-parallel scaling) and disk."""
    c = run.config()
    net = network_costs(c)
    flops = step_flops(c)
    flops_per_s, source = throughput.rate(precision(c))
    steps = c.total_steps
    train_s = steps * flops / flops_per_s
    if c.max_train_seconds:  # ECT's short run stops at its wall-clock cap
        train_s = min(train_s, c.max_train_seconds * gpus)
        steps = min(steps, math.floor(train_s / (flops / flops_per_s)))
    eval_flops, eval_s = eval_seconds(c, steps, settings, throughput)
    return dict(
        experiment=run.experiment,
        variant=run.variant,
        seed=run.seed,
        recipe=run.recipe,
        params=net["params"],
        batch=c.batch_size,
        steps=steps,
        step_gflop=flops / 1e9,
        train_flop=flops * steps,
        train_gpu_h=train_s / 3600,
        eval_flop=eval_flops,
        eval_gpu_h=eval_s / 3600,
        wall_h=(train_s / gpus + eval_s) / 3600,  # evaluation asks for one GPU
        disk_bytes=disk_bytes(c, net["params"], steps),
        throughput=source,
    )


def plan(config: dict, throughput: Throughput, gpus: int = 1) -> list[dict]:
    """Every run of the study, one row each (data first; `render` formats)."""
    return [
        run_plan(run, _eval_settings(config, run.experiment), throughput, gpus)
        for run in study.runs(config)
    ]


SUMMED = ("train_flop", "train_gpu_h", "eval_flop", "eval_gpu_h", "disk_bytes")


def totals(rows: Iterable[dict]) -> dict:
    """Runs and the sums of the additive columns."""
    rows = list(rows)
    return dict(runs=len(rows), **{k: sum(r[k] for r in rows) for k in SUMMED})


def gpus_per_run(config: dict) -> int:
    """GPUs per training job on the study's cluster (slurm/cluster.yaml), 1 locally."""
    from .launch import gpus_per_job

    return gpus_per_job(config.get("cluster", "local"), config.get("slurm_config"))


def _num(x: float) -> str:
    """Thousands separators for big numbers, three significant digits for small ones."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError


def render(rows: list[dict], gpus: int) -> str:
    """The plan as text: per variant (one run's cost), per experiment, the total, and what the
    throughput rests on."""
    import pandas as pd
    from tabulate import tabulate

    frame = pd.DataFrame(rows)
    per_run = frame.groupby(["experiment", "variant"], sort=False).agg(
        runs=("seed", "size"),
        **{k: (k, "first") for k in ("recipe", "params", "batch", "steps", "step_gflop")},
        **{k: (k, "first") for k in ("train_gpu_h", "eval_gpu_h", "wall_h", "disk_bytes")},
    )
    variants = [
        [
            exp,
            var,
            r.runs,
            r.recipe,
            f"{r.params / 1e6:.1f}M",
            r.batch,
            f"{r.steps:,}",
            _num(r.step_gflop),
            _num(r.train_gpu_h),
            _num(r.eval_gpu_h),
            _num(r.wall_h),
            _size(r.disk_bytes),
        ]
        for (exp, var), r in per_run.iterrows()
    ]
    head = ["experiment", "variant", "runs", "recipe", "params", "batch", "steps", "GFLOP/step"]
    head += ["train GPU-h/run", "eval GPU-h/run", f"wall h/run ({gpus} GPU)", "disk/run"]
    experiments = []
    for exp, group in frame.groupby("experiment", sort=False):
        experiments.append([exp, *_total_cells(totals(group.to_dict("records")))])
    experiments.append(["TOTAL", *_total_cells(totals(rows))])
    sums = ["experiment", "runs", "train PFLOP", "train GPU-h", "eval GPU-h", "GPU-h", "disk"]
    sources = sorted(set(frame["throughput"]))
    return "\n\n".join(
        [
            "Per run (each seed of a variant costs the same):",
            tabulate(variants, head, tablefmt="github", disable_numparse=True),
            "Per experiment and in total:",
            tabulate(experiments, sums, tablefmt="github", disable_numparse=True),
            "Throughput: " + "\n".join(sources),
            "FLOPs counted with torch.utils.flop_counter on each recipe's network; a training "
            "step = batch x (target forward + prediction forward and backward + mu x GC "
            "endpoint forward). Evaluation: the curve at every snapshot and the final "
            "metrics, generation + one feature pass per FID mode. Wall-clock assumes ideal "
            "data-parallel scaling and no queueing.",
        ]
    )


def _total_cells(t: dict) -> list[str]:
    return [
        str(t["runs"]),
        _num(t["train_flop"] / 1e15),
        _num(t["train_gpu_h"]),
        _num(t["eval_gpu_h"]),
        _num(t["train_gpu_h"] + t["eval_gpu_h"]),
        _size(t["disk_bytes"]),
    ]
