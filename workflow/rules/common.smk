# Validation and run expansion. Everything a rule needs about a run comes from gcbench.study.
import os
import shlex
import subprocess
import sys

from snakemake.utils import validate

from gcbench import study
from gcbench.catalog import PAPER_DATASETS
from gcbench.checkpoint import check_writable

validate(config, "../schemas/config.schema.yaml")
check_writable("results")  # a read-only results/ fails now, not after the jobs ran
RUNS = study.validate(config)  # every run's TrainConfig resolved before any job is submitted
RUN = "results/runs/{exp}/{variant}/s{seed}"
# `gcbench` from the interpreter Snakemake runs in, whether or not its venv is activated.
GCBENCH = f"{shlex.quote(sys.executable)} -m gcbench"


wildcard_constraints:
    exp="[A-Za-z0-9_.-]+",
    variant="[A-Za-z0-9_.-]+",
    seed="[0-9]+",


def run_of(wildcards):
    return study.find(config, wildcards.exp, wildcards.variant, wildcards.seed)


def all_runs(pattern):
    return [pattern.format(exp=r.experiment, variant=r.variant, seed=r.seed) for r in RUNS]


def launch_options():
    slurm = f"--slurm-config {config['slurm_config']}" if config["cluster"] == "slurm" else ""
    return f"--cluster {config['cluster']} --threads {config['threads_per_job']} {slurm}"


def prepared_data(exp):
    """The prepared array an experiment waits for, if the workflow prepares its dataset."""
    dataset = config["experiments"][exp]["dataset"]
    return [f"data/{dataset}/train.npy"] if dataset in config.get("prepare_data", {}) else []


def prepare_source(dataset):
    source = config["prepare_data"][dataset]
    return "" if source == "download" else f"--source {shlex.quote(source)}"


def report_args():
    """The runs the study expects (from the config, never from what exists on disk) and the
    table each experiment feeds."""
    expect = " ".join(f"--expect {r.path}" for r in RUNS)
    tables = " ".join(
        f"--table {n}={e.get('table', 'table1')}" for n, e in config["experiments"].items()
    )
    return f"{expect} {tables}"


def write_html_report():
    """Snakemake's HTML report of this study, by a nested `snakemake --report`, once the report
    rule has succeeded (a partial run, e.g. one target, has no tables to gather). A report that
    fails costs nothing else: its log says why."""
    if not os.path.exists("results/logs/report/complete"):
        return
    args = study.html_report_args(
        workflow.main_snakefile,
        os.getcwd(),
        [str(path) for path in workflow.config_settings.configfiles],
        list(workflow.config_settings.config_args or []),
    )
    with open("results/logs/report/html.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *args], stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode:
        print("the HTML report failed: see results/logs/report/html.log", file=sys.stderr)
