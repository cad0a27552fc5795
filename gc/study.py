"""A study: experiments x variants x seeds, expanded from the workflow config into runs.

The Snakemake rules stay declarative; everything they need to know about a run (its directory,
its recipe and overrides, what to evaluate) comes from here, where it can be tested.

Config shape (validated by workflow/schemas/config.schema.yaml):

    experiments:
      cifar10:                       # experiment name; runs live in results/runs/cifar10/...
        dataset: cifar10             # recipe prefix: recipes are <dataset>-<coupling>
        recipe: cifar10_ect_long     # optional recipe prefix when it is not the dataset (ECT)
        seeds: [0, 1, 2]
        set: [total_steps=100000]    # overrides for every variant (optional)
        variants:
          ic: {coupling: ic}
          gc: {coupling: gc, set: [mu=0.5]}
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .catalog import FID_MODES
from .recipes import TrainConfig, resolve

RUNS_DIR = "results/runs"
HTML_REPORT = "results/report.html"
# One digits classifier per study: every FD-digits of the study is in the same feature space.
DIGITS_CLASSIFIER = "results/digits_classifier.pt"


@dataclass(frozen=True)
class Run:
    experiment: str
    variant: str  # the name in the config (e.g. gc_mu0.3), not only the coupling
    seed: int
    recipe: str
    overrides: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{RUNS_DIR}/{self.experiment}/{self.variant}/s{self.seed}"

    def config(self) -> TrainConfig:
        return resolve(self.recipe, list(self.overrides))


def runs(config: dict) -> list[Run]:
    out = []
    for name, exp in config["experiments"].items():
        for variant, spec in exp["variants"].items():
            recipe = f"{exp.get('recipe', exp['dataset'])}-{spec['coupling']}"
            for seed in exp["seeds"]:
                overrides = (*exp.get("set", []), *spec.get("set", []), f"seed={seed}")
                out.append(Run(name, variant, int(seed), recipe, overrides))
    return out


def find(config: dict, experiment: str, variant: str, seed: int | str) -> Run:
    for run in runs(config):
        if (run.experiment, run.variant, run.seed) == (experiment, variant, int(seed)):
            return run
    raise KeyError(f"no run {experiment}/{variant}/s{seed} in the config")


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


def asset_env(config: dict, experiment: str) -> str:
    """A shell prefix that points training at the study's asset cache, where `gcbench check`
    verified the pretrained weights (ECT); empty for the default cache."""
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    return f"GCBENCH_CACHE={shlex.quote(str(e['cache_dir']))} " if e.get("cache_dir") else ""


def init_inputs(run: Run) -> list[str]:
    """What a run initialised from another run of the study waits for: that run's completion
    (the embedded ECT analogue starts from a denoiser the study pretrains)."""
    init = run.config().init
    return [f"{init.rstrip('/')}/done.json"] if init.startswith(f"{RUNS_DIR}/") else []


def shell_overrides(run: Run) -> str:
    return " ".join(f"--set {o}" for o in run.overrides)


def eval_args(config: dict, experiment: str, curve: bool) -> str:
    """`gcbench eval` options for one experiment: the study's eval settings, then the
    experiment's own."""
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    args = (
        ["--curve", f"--n {e.get('curve_n', 10_000)}"] if curve else [f"--n {e.get('n', 50_000)}"]
    )
    args += [f"--steps {s}" for s in ([1] if curve else e.get("steps", [1]))]
    args += [f"--weights {w}" for w in e.get("weights", ["ema"])]
    args += [f"--mode {m}" for m in e.get("modes", FID_MODES)]
    if e.get("offline_inception"):
        args.append("--offline-inception")
    if e.get("cache_dir"):
        args.append(f"--cache-dir {e['cache_dir']}")
    if config["experiments"][experiment]["dataset"] == "digits8":
        args.append(f"--digits-classifier {DIGITS_CLASSIFIER}")
    args.append(f"--device {e.get('device', 'auto')} --seed {e.get('seed', 0)}")
    return " ".join(args)


def classifier_inputs(config: dict, experiment: str) -> list[str]:
    """What an experiment's evaluation waits for besides its run: the study's digits
    classifier, trained once by its own rule."""
    return [DIGITS_CLASSIFIER] if config["experiments"][experiment]["dataset"] == "digits8" else []


def check_args(config: dict, experiment: str) -> str:
    """`gcbench check` options for an experiment: its first run's recipe and overrides, and
    the evaluation settings whose assets must exist."""
    run = next(r for r in runs(config) if r.experiment == experiment)
    e = {**config.get("eval", {}), **config["experiments"][experiment].get("eval", {})}
    args = [f"--recipe {run.recipe}", shell_overrides(run)]
    args += [f"--mode {m}" for m in e.get("modes", FID_MODES)]
    if e.get("offline_inception"):
        args.append("--offline-inception")
    if e.get("cache_dir"):
        args.append(f"--cache-dir {e['cache_dir']}")
    return " ".join(args)


def html_report_args(
    snakefile: str, workdir: str, configfiles: list[str], config_args: list[str]
) -> list[str]:
    """Snakemake's arguments for the HTML report of the study a run was started with: the same
    Snakefile, directory, config files and --config values (as Snakemake passes them to its own
    jobs), so that the report describes the same DAG."""
    args = ["--snakefile", snakefile, "--directory", workdir, "--report", HTML_REPORT]
    for path in configfiles:
        args += ["--configfile", path]
    return args + (["--config", *config_args] if config_args else [])
