"""A study: experiments x variants x seeds, expanded from the workflow config into runs.

The Snakemake rules stay declarative; everything they need to know about a run (its directory,
its recipe and overrides, what to evaluate) comes from here, where it can be tested.

Config shape (validated by workflow/schemas/config.schema.yaml; composed by compose.py):

    study: paper                     # optional: the report folder's name (default: file name)
    outdir: results                  # optional: where runs and reports go (layout.py)
    extends: default.yaml            # optional: add to another study (compose.py)
    experiments:
      cifar10:                       # experiment name; runs live in <outdir>/runs/cifar10/...
        dataset: cifar10             # recipe prefix: recipes are <dataset>-<coupling>
        recipe: cifar10_ect_long     # optional recipe prefix when it is not the dataset (ECT)
        seeds: [0, 1, 2]
        set: [total_steps=100000]    # overrides for every variant (optional)
        variants:
          ic: {coupling: ic}
          gc: {coupling: gc, set: [mu=0.5]}
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import checkpoint, layout
from .catalog import FID_MODES
from .layout import RunId, StudyLayout
from .paper import FID_SAMPLES
from .recipes import ConfigError, TrainConfig, config_changes, describe_changes, resolve


def paths(config: dict) -> StudyLayout:
    """The study's layout: its outdir and name (both set by compose.py when the config is read)."""
    return StudyLayout(config.get("outdir", layout.DEFAULT_OUTDIR), config.get("study", "default"))


@dataclass(frozen=True)
class Run:
    experiment: str
    variant: str  # the name in the config (e.g. gc_mu0.3), not only the coupling
    seed: int
    recipe: str
    overrides: tuple[str, ...]
    outdir: str = layout.DEFAULT_OUTDIR

    @property
    def id(self) -> RunId:
        return RunId(self.experiment, self.variant, self.seed)

    @property
    def path(self) -> str:
        return layout.run_dir(self.outdir, self.id)

    def config(self) -> TrainConfig:
        return resolve(self.recipe, list(self.overrides))


def runs(config: dict) -> list[Run]:
    outdir = paths(config).outdir
    out = []
    for name, exp in config["experiments"].items():
        for variant, spec in exp["variants"].items():
            recipe = f"{exp.get('recipe', exp['dataset'])}-{spec['coupling']}"
            for seed in exp["seeds"]:
                overrides = (*exp.get("set", []), *spec.get("set", []), f"seed={seed}")
                run = Run(name, variant, int(seed), recipe, overrides, outdir)
                out.append(_with_resolved_init(run))
    return out


def _with_resolved_init(run: Run) -> Run:
    """A `run:` init (another run of the study) becomes that run's directory under the
    study's outdir, as an explicit override, so the job and its recorded config name it."""
    try:
        init = run.config().init
    except ValueError:
        return run  # validate() reports it with the run's name
    if not init.startswith(layout.RUN_REF):
        return run
    path = layout.resolve_init(init, run.outdir)
    return Run(
        run.experiment,
        run.variant,
        run.seed,
        run.recipe,
        (*run.overrides, f"init={path}"),
        run.outdir,
    )


class Index:
    """The study's runs by (experiment, variant, seed), expanded once."""

    def __init__(self, config: dict):
        self.config = config

    @cached_property
    def runs(self) -> list[Run]:
        return runs(self.config)

    @cached_property
    def _by_id(self) -> dict[tuple, Run]:
        return {(r.experiment, r.variant, r.seed): r for r in self.runs}

    def find(self, experiment: str, variant: str, seed: int | str) -> Run:
        try:
            return self._by_id[(experiment, variant, int(seed))]
        except KeyError:
            raise KeyError(f"no run {experiment}/{variant}/s{seed} in the config") from None


def find(config: dict, experiment: str, variant: str, seed: int | str) -> Run:
    return Index(config).find(experiment, variant, seed)


def validate(config: dict) -> list[Run]:
    """Resolve every run's TrainConfig now, so that a bad value fails before any submission,
    with the run it belongs to in the message."""
    all_runs = runs(config)
    for run in all_runs:
        try:
            c = run.config()
        except ValueError as err:
            raise ValueError(f"{run.experiment}/{run.variant}/s{run.seed}: {err}") from None
        dataset = config["experiments"][run.experiment]["dataset"]
        if c.dataset != dataset:
            raise ValueError(
                f"{run.experiment}: recipe {run.recipe} trains {c.dataset}, but the experiment "
                f"says dataset: {dataset}; make them agree"
            )
    return all_runs


def drift(all_runs: list[Run]) -> list[tuple[Run, dict[str, tuple]]]:
    """Each existing run directory whose recorded config differs from what the study now asks
    of it, with the changed fields."""
    found = []
    for run in all_runs:
        recorded = Path(run.path) / "config.json"
        if recorded.exists():
            changes = config_changes(checkpoint.read_json(recorded), run.config())
            if changes:
                found.append((run, changes))
    return found


def refuse_drift(all_runs: list[Run]) -> None:
    """Stop the study, before any job is scheduled, when a run it would reuse was trained (or
    started) with other settings: Snakemake would otherwise rerun it over its results."""
    found = drift(all_runs)
    if not found:
        return
    lines = ["the study asks for runs that exist with other settings (recorded -> now):"]
    for run, changes in found:
        state = "finished" if (Path(run.path) / "done.json").exists() else "started"
        lines.append(f"  {run.path} ({state}): {describe_changes(changes)}")
    lines.append(
        "Nothing was run. Either give the changed setup a new variant (or experiment) name, so "
        "that it trains beside the old runs, or move each old run aside (it is never deleted):"
    )
    lines += [f"  gcbench forget {run.path}" for run, _ in found]
    raise ConfigError("\n".join(lines))


def asset_env(config: dict, experiment: str) -> str:
    """A shell prefix that points training at the study's asset cache, where `gcbench check`
    verified the pretrained weights (ECT); empty for the default cache."""
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    return f"GCBENCH_CACHE={shlex.quote(str(e['cache_dir']))} " if e.get("cache_dir") else ""


def init_inputs(run: Run) -> list[str]:
    """What a run initialised from another run of the study waits for: that run's training
    (the embedded ECT analogue starts from a denoiser the study pretrains)."""
    init = run.config().init.rstrip("/")
    try:
        outdir, run_id = layout.parse_run_dir(init)
    except ValueError:
        return []  # an asset, a pickle or a snapshot file
    return [train_marker(layout.run_dir(outdir, run_id))]


def train_marker(run_path: str) -> str:
    """The train rule's output. Not done.json: Snakemake deletes a job's outputs before it
    reruns the job (a changed parameter, --forcerun), and a finished run must never lose its
    done.json that way; a rerun of a finished run is a no-op that writes this file again."""
    return f"{run_path}/train.complete"


def slurm_args(config: dict, experiment: str, section: str) -> str:
    """`gcbench launch --slurm-set` flags for an experiment's own SLURM resources
    (`experiments.<name>.slurm.<section>`), which replace slurm_config's for its jobs."""
    values = config["experiments"][experiment].get("slurm", {}).get(section, {})
    return " ".join(
        f"--slurm-set {shlex.quote(f'{k}={json.dumps(v)}')}"  # JSON is YAML
        for k, v in values.items()
    )


def shell_overrides(run: Run) -> str:
    return " ".join(f"--set {o}" for o in run.overrides)


def eval_args(config: dict, experiment: str, curve: bool) -> str:
    """`gcbench eval` options for one experiment: the study's eval settings, then the
    experiment's own."""
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    args = (
        ["--curve", f"--n {e.get('curve_n', 10_000)}"]
        if curve
        else [f"--n {e.get('n', FID_SAMPLES)}"]
    )
    args += [f"--steps {s}" for s in ([1] if curve else e.get("steps", [1]))]
    args += [f"--weights {w}" for w in e.get("weights", ["ema"])]
    args += [f"--mode {m}" for m in e.get("modes", FID_MODES)]
    if e.get("offline_inception"):
        args.append("--offline-inception")
    if e.get("cache_dir"):
        args.append(f"--cache-dir {e['cache_dir']}")
    if config["experiments"][experiment]["dataset"] == "digits8":
        args.append(f"--digits-classifier {paths(config).digits_classifier}")
    args.append(f"--device {e.get('device', 'auto')} --seed {e.get('seed', 0)}")
    return " ".join(args)


def classifier_inputs(config: dict, experiment: str) -> list[str]:
    """What an experiment's evaluation waits for besides its run: the study's digits
    classifier, trained once by its own rule."""
    digits = config["experiments"][experiment]["dataset"] == "digits8"
    return [paths(config).digits_classifier] if digits else []


def check_args(config: dict, experiment: str) -> str:
    """`gcbench check` options for an experiment: its first run's recipe and overrides, and
    the evaluation settings whose assets must exist."""
    run = next(r for r in Index(config).runs if r.experiment == experiment)
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    args = [f"--recipe {run.recipe}", shell_overrides(run)]
    args += [f"--mode {m}" for m in e.get("modes", FID_MODES)]
    if e.get("offline_inception"):
        args.append("--offline-inception")
    if e.get("cache_dir"):
        args.append(f"--cache-dir {e['cache_dir']}")
    return " ".join(args)


def html_report_args(
    snakefile: str, workdir: str, configfiles: list[str], config_args: list[str], html_report: str
) -> list[str]:
    """Snakemake's arguments for the HTML report of the study a run was started with: the same
    Snakefile, directory, config files and --config values (as Snakemake passes them to its own
    jobs), so that the report describes the same DAG."""
    args = ["--snakefile", snakefile, "--directory", workdir, "--report", html_report]
    for path in configfiles:
        args += ["--configfile", path]
    return args + (["--config", *config_args] if config_args else [])
