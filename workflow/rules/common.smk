# Composition, validation and run expansion. Everything a rule needs about a run comes from
# gcbench.study; every path comes from gcbench.layout.
import os
import shlex
import subprocess
import sys

from snakemake.utils import validate

from gcbench import compose, layout, study
from gcbench.catalog import PAPER_DATASETS
from gcbench.checkpoint import check_writable

# The study as the config files describe it, with `extends:` resolved and layered files that
# would drop runs refused (Snakemake's own merge replaces lists).
if workflow.config_settings.configfiles:
    _composed = compose.compose(
        workflow.config_settings.configfiles, dict(workflow.config_settings.config)
    )
    config.clear()
    config.update(_composed)
validate(config, "../schemas/config.schema.yaml")
PATHS = study.paths(config)
check_writable(PATHS.outdir)  # a read-only outdir fails now, not after the jobs ran
INDEX = study.Index(config)
RUNS = study.validate(config)  # every run's TrainConfig resolved before any job is submitted
# A run trained with other settings stops the study here, before Snakemake could rerun it.
study.refuse_drift(RUNS)
RUN = layout.run_pattern(PATHS.outdir)
# `gcbench` from the interpreter Snakemake runs in, whether or not its venv is activated.
GCBENCH = f"{shlex.quote(sys.executable)} -m gcbench"


wildcard_constraints:
    exp="[A-Za-z0-9_.-]+",
    variant="[A-Za-z0-9_.-]+",
    seed="[0-9]+",


def run_of(wildcards):
    return INDEX.find(wildcards.exp, wildcards.variant, wildcards.seed)


def all_runs(pattern):
    return [pattern.format(exp=r.experiment, variant=r.variant, seed=r.seed) for r in RUNS]


def slurm_config_path():
    """The SLURM options file, absolute: jobs may run in another directory (--directory)
    than the repository's, where a relative slurm/cluster.yaml would not resolve."""
    path = config["slurm_config"]
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return os.path.join(workflow.basedir, path)


def launch_options():
    slurm = (
        f"--slurm-config {shlex.quote(slurm_config_path())}" if config["cluster"] == "slurm" else ""
    )
    return f"--cluster {config['cluster']} --threads {config['threads_per_job']} {slurm}"


def gcbench_for(section, job_dir):
    """The `gcbench` command of a step that runs in the driver's process: `gcbench` itself,
    or, for the steps listed in `cluster_rules`, `gcbench launch command`, which runs the same
    command as a cluster job with `section`'s resources and waits for it."""
    if section not in config.get("cluster_rules", []) or config["cluster"] != "slurm":
        return GCBENCH
    return (
        f"{GCBENCH} launch command --section {section} --job-dir {shlex.quote(job_dir)} "
        f"{launch_options()} --"
    )


def prepared_data(exp):
    """The prepared array an experiment waits for, if the workflow prepares its dataset."""
    dataset = config["experiments"][exp]["dataset"]
    return [f"data/{dataset}/train.npy"] if dataset in config.get("prepare_data", {}) else []


def prepare_source(dataset):
    source = config["prepare_data"][dataset]
    return "" if source == "download" else f"--source {shlex.quote(source)}"


def report_args():
    """The study's report folder, the runs it expects (from the config, never from what exists
    on disk) and the table each experiment feeds."""
    expect = " ".join(f"--expect {r.path}" for r in RUNS)
    tables = " ".join(
        f"--table {n}={e.get('table', 'table1')}" for n, e in config["experiments"].items()
    )
    return f"--results {PATHS.report} {expect} {tables}"


def write_html_report():
    """Snakemake's HTML report of this study, by a nested `snakemake --report`, once the report
    rule has succeeded (a partial run, e.g. one target, has no tables to gather). A report that
    fails costs nothing else: its log says why."""
    if not os.path.exists(PATHS.log("report", "complete")):
        return
    args = study.html_report_args(
        workflow.main_snakefile,
        os.getcwd(),
        [str(path) for path in workflow.config_settings.configfiles],
        list(workflow.config_settings.config_args or []),
        PATHS.html_report,
    )
    log_path = PATHS.log("report", "html.log")
    with open(log_path, "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *args], stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode:
        print(f"the HTML report failed: see {log_path}", file=sys.stderr)
