"""Reruns and studies that never destroy a finished result: drift is refused before any job,
studies write their own reports, outputs can live elsewhere, composed studies keep every run,
and finished runs keep what the report needs."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gcbench import checkpoint, compose, layout, study
from test_workflow import _job_counts, _snakemake

ROOT = Path(__file__).parent.parent

# Two toy runs of a few seconds each: the smallest real study.
TOY = (
    "cluster: local\nthreads_per_job: 1\n"
    "eval: {n: 200, curve_n: 100, steps: [1], weights: [ema], device: cpu}\n"
    "experiments:\n  toy2d:\n    dataset: toy2d\n    seeds: [0]\n"
    "    set: [total_steps=20, snapshot_every=10, log_every=10, device=cpu]\n"
    "    table: toy\n    variants:\n      ic: {coupling: ic}\n      gc: {coupling: gc}\n"
)


def _digests(run: Path) -> dict[str, str]:
    """Every file of a run that training wrote, by content."""
    files = [run / "done.json", run / "config.json", *sorted((run / "snapshots").glob("*.pt"))]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_a_changed_setting_is_refused_before_any_job_and_nothing_is_lost(workdir):
    (workdir / "toy.yaml").write_text(TOY)
    out = _snakemake(workdir, "--cores", "2", "--configfile", "toy.yaml")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = workdir / "results/runs/toy2d/gc/s0"
    before = _digests(run)
    assert not (run / "state.pt").exists()  # a finished run drops its resume state

    changed = TOY.replace("gc: {coupling: gc}", "gc: {coupling: gc, set: [dropout=0.3]}")
    (workdir / "toy.yaml").write_text(changed)
    out = _snakemake(workdir, "--cores", "2", "--configfile", "toy.yaml")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "results/runs/toy2d/gc/s0 (finished): dropout: [0.0] -> [0.3]" in text
    assert "new variant" in text and "gcbench forget results/runs/toy2d/gc/s0" in text
    assert "rule train" not in text and "launch train" not in text  # no job was scheduled
    assert _digests(run) == before

    # The way on that keeps the old run: move it aside, then the study trains it afresh.
    forget = subprocess.run(
        [sys.executable, "-m", "gcbench", "forget", "results/runs/toy2d/gc/s0"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert forget.returncode == 0, forget.stderr
    (moved,) = (workdir / "results/forgotten").glob("*/toy2d/gc/s0")
    assert _digests(moved) == before
    out = _snakemake(workdir, "-n", "--cores", "2", "--configfile", "toy.yaml")
    assert out.returncode == 0, out.stderr
    assert _job_counts(out.stdout)["train"] == 1  # only the forgotten run


@pytest.mark.slow
def test_two_studies_keep_their_own_reports_and_share_identical_runs(workdir):
    (workdir / "first.yaml").write_text(TOY)
    # The second study adds a seed to the first: the shared runs are reused, not retrained.
    (workdir / "second.yaml").write_text(
        "extends: first.yaml\nexperiments:\n  toy2d:\n    seeds: [1]\n"
    )
    for name in ("first", "second"):
        out = _snakemake(workdir, "--cores", "2", "--configfile", f"{name}.yaml")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        # Each study trains two runs: the second only seed 1's, reusing seed 0's.
        assert (out.stdout + out.stderr).count("rule train:") == 2
    for run in (workdir / "results/runs/toy2d").glob("*/s0"):  # trained once, by the first
        assert [j["name"] for j in checkpoint.read_jsonl(run / "jobs.jsonl")] == [
            "train",
            "evaluate",
        ]
    first, second = workdir / "results/first", workdir / "results/second"
    for folder in (first, second):
        for name in ("claims.md", "tables/toy.md", "tidy.csv", "README.md", "report.html"):
            assert (folder / name).exists(), folder / name
    assert "| 1/1 " in (first / "tables/toy.md").read_text()
    assert "| 2/2 " in (second / "tables/toy.md").read_text()


def test_outputs_on_scratch_and_another_working_directory(workdir, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")
    (workdir / "toy.yaml").write_text(TOY + f"outdir: {scratch}/out\n")
    snakefile = workdir / "Snakefile"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1"]
        + ["--snakefile", str(snakefile), "--directory", str(elsewhere)]
        + ["--configfile", str(workdir / "toy.yaml"), "--config", "cluster=slurm"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    commands = [line for line in out.stdout.splitlines() if " launch " in line]
    assert len(commands) == 4  # two trainings, two evaluations
    for line in commands:
        # The SLURM options come from the repository, the runs go to the scratch outdir.
        assert f"--slurm-config {workdir / 'slurm/cluster.yaml'}" in line
        assert f"--run-dir {scratch}/out/runs/toy2d/" in line
    assert f"{scratch}/out/toy/claims.md" in out.stdout  # the study's report folder


def test_extends_adds_runs_and_layering_that_would_drop_runs_is_refused(workdir):
    paper = study.runs(compose.load_study(workdir / "workflow/config/paper.yaml"))
    (workdir / "extra.yaml").write_text(
        "extends: workflow/config/paper.yaml\n"
        "experiments:\n  cifar10:\n    seeds: [5]\n"
        "    variants:\n      gc_mu0.4: {coupling: gc, set: [mu=0.4]}\n"
    )
    extra = study.runs(compose.load_study(workdir / "extra.yaml"))
    assert {r.path for r in paper} < {r.path for r in extra}
    added = {r.path for r in extra} - {r.path for r in paper}
    # The new variant on every seed (0-2 and 5), and seed 5 of every other cifar10 variant.
    cifar10 = {r.variant for r in paper if r.experiment == "cifar10"}
    assert len(added) == 4 + len(cifar10)
    out = _snakemake(workdir, "-n", "--profile", "slurm", "--configfile", "extra.yaml")
    assert out.returncode == 0, out.stderr
    assert _job_counts(out.stdout)["train"] == len(extra)

    # Plain layering through Snakemake would replace the seeds list: refused, with the key.
    (workdir / "layer.yaml").write_text("experiments:\n  cifar10:\n    seeds: [5]\n")
    out = _snakemake(
        workdir, "-n", "--cores", "1", "--configfile", "workflow/config/paper.yaml", "layer.yaml"
    )
    assert out.returncode != 0
    assert "experiments.cifar10.seeds: [0, 1, 2] -> [5]" in out.stdout + out.stderr
    assert "extends:" in out.stdout + out.stderr


def test_merge_adding_keeps_every_item():
    base = {"seeds": [0, 1], "eval": {"n": 10, "steps": [1]}, "cluster": "local"}
    extra = {"seeds": [1, 5], "eval": {"steps": [2]}, "cluster": "slurm"}
    assert compose.merge_adding(base, extra) == {
        "seeds": [0, 1, 5],
        "eval": {"n": 10, "steps": [1, 2]},
        "cluster": "slurm",
    }


def test_extends_cycle_and_study_names(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nexperiments: {}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nexperiments: {}\n")
    with pytest.raises(compose.CompositionError, match="cycle"):
        compose.load_study(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("experiments: {}\n")
    assert compose.load_study(tmp_path / "c.yaml")["study"] == "c"
    with pytest.raises(ValueError, match="cannot name a folder"):
        layout.StudyLayout("results", "runs")


def test_run_paths_have_one_owner():
    run = layout.RunId("cifar10", "gc_mu0.3", 2)
    path = layout.run_dir("/scratch/out", run)
    assert path == "/scratch/out/runs/cifar10/gc_mu0.3/s2"
    assert layout.parse_run_dir(path) == ("/scratch/out", run)
    assert layout.parse_run_dir("results/runs/cifar10/gc_mu0.3/s2/") == ("results", run)
    assert layout.resolve_init("run:pre/denoiser/s0", "out") == "out/runs/pre/denoiser/s0"
    assert layout.resolve_init("edm-cifar10", "out") == "edm-cifar10"
    for bad in ("results/cifar10/gc/s0", "results/runs/cifar10/gc/seed0"):
        with pytest.raises(ValueError, match="not a run directory"):
            layout.parse_run_dir(bad)


def test_no_code_parses_run_paths_by_position():
    """Only gc/layout.py knows how a run path is built; nothing indexes path parts."""
    offenders = []
    for path in [*ROOT.glob("gc/*.py"), *ROOT.glob("workflow/rules/*.smk"), ROOT / "Snakefile"]:
        text = path.read_text()
        if ".parts[-" in text or "parts[" in text:
            offenders.append(path.name)
    assert not offenders


@pytest.mark.slow
def test_finished_runs_keep_snapshots_and_prune_to_the_final_one(tmp_path):
    from gcbench.recipes import resolve
    from gcbench.train import train

    run = tmp_path / "runs/toy2d/gc/s0"
    c = resolve("toy2d-gc", ["total_steps=20", "snapshot_every=5", "log_every=5", "device=cpu"])
    assert train(c, run, progress=False) == "done"
    assert not list(run.glob("state*"))  # state.pt, state.prev.pt and their checksums
    assert sorted(checkpoint.list_snapshots(run)) == [5, 10, 15, 20]
    gcbench = [sys.executable, "-m", "gcbench"]
    out = subprocess.run([*gcbench, "prune", str(run), "--keep", "final"], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert sorted(checkpoint.list_snapshots(run)) == [20]
    curve = subprocess.run(
        [*gcbench, "eval", "--run-dir", str(run), "--curve", "--n", "50", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=os.environ | {"GCBENCH_CACHE": str(tmp_path / "cache")},
    )
    assert curve.returncode != 0 and "keeps only its final snapshot" in curve.stderr
    # A finished run is not trained again: the same call returns at once, touching nothing.
    assert train(c, run, progress=False) == "done"
    assert sorted(checkpoint.list_snapshots(run)) == [20]
