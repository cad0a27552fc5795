"""The Snakemake workflow, the submitit launcher and the report."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from gcbench import checkpoint, study
from gcbench.report import report, summary_table, tidy

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _job_counts(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _snakemake(workdir, *args, timeout=600):
    env = os.environ | {"GCBENCH_CACHE": str(workdir / "cache")}  # no writes to ~/.cache
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_dry_run_of_the_embedded_default(workdir):
    out = _snakemake(workdir, "-n", "-p", "--cores", "2")
    assert out.returncode == 0, out.stderr
    counts = _job_counts(out.stdout)
    # digits8: 3 variants x 6 seeds; toy2d: 2 variants x 3 seeds; one evaluation job per run.
    assert counts["train"] == counts["evaluate"] == 3 * 6 + 2 * 3
    assert counts["check_inputs"] == 2 and counts["report"] == 1
    assert counts["digits_classifier"] == 1  # one feature network for every FD-digits
    assert "--digits-classifier results/digits_classifier.pt" in out.stdout


def test_dry_run_of_the_paper_study_under_the_slurm_profile(workdir):
    out = _snakemake(workdir, "-n", "--profile", "slurm")
    assert out.returncode == 0, out.stderr
    counts = _job_counts(out.stdout)
    # Table 1: 4 datasets x 4 variants; Table 3: 2 ablations (same wall-clock is the GC run
    # taken at IC's training seconds); mu sweep: 6 values; Table 2: ECT short and long on
    # CIFAR-10, IC, GC and GC's online endpoint in each; 3 seeds each.
    assert counts["train"] == counts["evaluate"] == (16 + 2 + 6 + 6) * 3
    # Absolute, so that a job started in another directory (--directory) finds it.
    slurm_config = f"--slurm-config {workdir / 'slurm/cluster.yaml'}"
    assert f"launch train --cluster slurm --threads 0 {slurm_config}" in out.stdout
    for recipe in ("cifar10_ect_short-ic", "cifar10_ect_short-gc", "cifar10_ect_long-gc"):
        assert f"--recipe {recipe} --set seed=2 --run-dir results/runs/" in out.stdout
    for setting in ("cifar10_ect_short", "cifar10_ect_long"):
        assert f"results/runs/{setting}/gc_online/s2" in out.stdout
    # The run's identity, for the SLURM job names gc:cifar10/gc/s0:train and :evaluate.
    assert "launch train --cluster slurm" in out.stdout
    assert out.stdout.count("--label cifar10/gc/s0 ") == 2


def test_dry_run_of_the_embedded_ect_study(workdir):
    config = "workflow/config/ect_digits.yaml"
    out = _snakemake(workdir, "-n", "-p", "--cores", "2", "--configfile", config)
    assert out.returncode == 0, out.stderr
    counts = _job_counts(out.stdout)
    # One pretrained denoiser; ECT long and short x (IC, GC EMA endpoint, GC online) x 3 seeds.
    assert counts["train"] == counts["evaluate"] == 1 + 2 * 3 * 3
    init = "--set init=results/runs/digits8_pretrain/denoiser/s0"
    trains = [line for line in out.stdout.splitlines() if " launch train " in line]
    assert sum(init in line for line in trains) == 18  # every fine-tuning run starts from it
    # A study cache: training reads the pretrained weights where `gcbench check` verified them.
    text = (
        (workdir / config)
        .read_text()
        .replace("  device: cpu\n", "  device: cpu\n  cache_dir: /srv/c\n", 1)
    )
    (workdir / "cached.yaml").write_text(text)
    out = _snakemake(workdir, "-n", "-p", "--cores", "2", "--configfile", "cached.yaml")
    trains = [line for line in out.stdout.splitlines() if " launch train " in line]
    assert len(trains) == 19 and all("GCBENCH_CACHE=/srv/c " in line for line in trains)
    assert "--cache-dir /srv/c" in out.stdout  # the check looks in the same place


@pytest.mark.slow
def test_ect_pretraining_then_fine_tuning_through_the_workflow(workdir):
    (workdir / "ect.yaml").write_text(
        "cluster: local\nthreads_per_job: 1\n"
        "eval: {n: 100, curve_n: 50, steps: [1, 2], weights: [ema], device: cpu}\n"
        "experiments:\n"
        "  pre:\n    dataset: digits8\n    recipe: digits8_edm\n    seeds: [0]\n"
        "    set: [total_steps=20, batch_size=16, mlp_hidden=32, snapshot_every=10, device=cpu]\n"
        "    table: table2\n    variants: {denoiser: {coupling: ic}}\n"
        "  long:\n    dataset: digits8\n    recipe: digits8_ect_long\n    seeds: [0, 1]\n"
        "    set: [init=results/runs/pre/denoiser/s0, total_steps=20, ect_stage_steps=5,"
        " batch_size=16, mlp_hidden=32, snapshot_every=10, log_every=10, device=cpu]\n"
        "    table: table2\n    variants: {ic: {coupling: ic}, gc: {coupling: gc}}\n"
    )
    out = _snakemake(workdir, "--cores", "2", "--configfile", "ect.yaml", timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = workdir / "results"
    denoiser = checkpoint.find_snapshot(results / "runs/pre/denoiser/s0", "final")
    for run in ("long/ic/s0", "long/gc/s1"):
        start = checkpoint.read_jsonl(results / "runs" / run / "provenance.jsonl")[0]
        assert start["init_sha256"] == checkpoint.sha256(denoiser)
        final = json.loads((results / "runs" / run / "eval/final.json").read_text())
        assert {r["sampling"]["steps"] for r in final} == {1, 2}
    table = (results / "ect/tables/table2.md").read_text()
    assert re.search(r"\| long +\| gc .*FD-digits.*\| 2/2 ", table), table
    assert "| long " not in (results / "ect/tables/table1.md").read_text()  # Table 2's runs only


def test_adding_a_seed_adds_only_new_runs(workdir):
    config = yaml.safe_load((workdir / "workflow/config/default.yaml").read_text())
    for exp in config["experiments"].values():
        exp["seeds"] = [*exp["seeds"], max(exp["seeds"]) + 1]
    (workdir / "more.yaml").write_text(yaml.safe_dump(config))
    out = _snakemake(workdir, "-n", "--cores", "2", "--configfile", "more.yaml")
    runs = sum(len(e["variants"]) * len(e["seeds"]) for e in config["experiments"].values())
    assert runs == 3 * 7 + 2 * 4  # digits8: 3 variants x 7 seeds; toy2d: 2 x 4
    assert _job_counts(out.stdout)["train"] == runs


def test_bad_config_fails_before_any_job(workdir):
    config = (workdir / "workflow/config/tiny.yaml").read_text()
    (workdir / "bad.yaml").write_text(
        config.replace("coupling: gc}", "coupling: gc, set: [mu=1.5]}")
    )
    out = _snakemake(workdir, "-n", "--cores", "2", "--configfile", "bad.yaml")
    assert out.returncode != 0
    assert "digits8/gc/s0: mu=1.5 is outside [0, 1]" in out.stdout + out.stderr


def test_unwritable_results_fail_before_any_job(workdir):
    # A file where results/ should be: unwritable even for root, unlike a chmod.
    (workdir / "results").write_text("not a folder")
    out = _snakemake(workdir, "--cores", "2", "--configfile", "workflow/config/tiny.yaml")
    assert out.returncode != 0
    assert "results is not a writable directory" in out.stdout + out.stderr
    assert "fix its permissions" in out.stdout + out.stderr
    assert "launch train" not in out.stdout + out.stderr  # no job was started


def test_missing_data_or_assets_stop_the_study_before_training(workdir):
    (workdir / "c10.yaml").write_text(
        "experiments:\n  c10:\n    dataset: cifar10\n    seeds: [0]\n"
        "    variants: {ic: {coupling: ic}}\n"
    )
    out = _snakemake(workdir, "--cores", "1", "--configfile", "c10.yaml")
    assert out.returncode != 0
    log = (workdir / "results/logs/check_inputs/c10.log").read_text()
    assert "dataset 'cifar10' not found" in log and "gcbench data prepare cifar10" in log
    assert not (workdir / "results/runs").exists()  # no training job started
    data = workdir / "data" / "cifar10"
    data.mkdir(parents=True)
    np.save(data / "train.npy", np.zeros((4, 32, 32, 3), dtype=np.uint8))
    out = _snakemake(workdir, "--cores", "1", "--configfile", "c10.yaml")
    log = (workdir / "results/logs/check_inputs/c10.log").read_text()
    assert "inception-2015-12-05.pt is missing" in log and "gcbench assets fetch" in log
    assert not (workdir / "results/runs").exists()


def test_prepare_data_rule_prepares_an_image_folder_before_the_check(workdir):
    from PIL import Image

    folder = workdir / "raw_church"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(5):
        pixels = rng.integers(0, 256, size=(80, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k}.png")
    (workdir / "church.yaml").write_text(
        f"prepare_data: {{lsun_church64: {folder}}}\n"
        "experiments:\n  church:\n    dataset: lsun_church64\n    seeds: [0]\n"
        "    variants: {ic: {coupling: ic}}\n"
    )
    out = _snakemake(workdir, "-n", "--cores", "1", "--configfile", "church.yaml")
    assert out.returncode == 0, out.stderr
    assert _job_counts(out.stdout)["prepare_data"] == 1
    out = _snakemake(
        workdir, "data/lsun_church64/train.npy", "--cores", "1", "--configfile", "church.yaml"
    )
    assert out.returncode == 0, out.stderr
    array = np.load(workdir / "data/lsun_church64/train.npy")
    assert array.shape == (5, 64, 64, 3) and array.dtype == np.uint8
    manifest = json.loads((workdir / "data/lsun_church64/manifest.json").read_text())
    assert manifest["count"] == 5 and "Lanczos" in manifest["construction_description"]
    # Prepared once: the next dry run has nothing to prepare.
    out = _snakemake(workdir, "-n", "--cores", "1", "--configfile", "church.yaml")
    assert "prepare_data" not in _job_counts(out.stdout)


def test_lint_is_clean_except_the_conda_environment_lint(workdir):
    # Filtered on purpose: "Specify a conda environment or container for each rule". The
    # project installs one Python environment (pip install -e .); a conda env per rule would
    # duplicate PyTorch for every rule.
    out = _snakemake(workdir, "--lint")
    lints = set(re.findall(r"^\s+\* (.+?):?$", out.stdout + out.stderr, re.M))
    assert lints <= {"Specify a conda environment or container for each rule."}, lints


@pytest.mark.slow
def test_tiny_end_to_end_run_through_submitit_local(workdir):
    # A --config value (the same as tiny.yaml's) must reach the nested report command intact.
    args = ["--configfile", "workflow/config/tiny.yaml", "--config", "threads_per_job=1"]
    out = _snakemake(workdir, "--cores", "2", *args, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = workdir / "results/tiny"  # the study's own folder
    for name in (
        "tables/table1.md",
        "tables/table1.tex",
        "tables/table1.csv",
        "tables/toy.md",
        "tidy.csv",
        "README.md",
        "figures/curve_digits8_iterations.png",
        "figures/curve_digits8_wallclock.pdf",
        "figures/transport_cost_toy2d.png",
        "figures/transport_cost_digits8.png",
        "claims.md",
        "claims.html",
    ):
        assert (results / name).exists(), name
    table = (results / "tables/table1.md").read_text()
    assert "FD-digits" in table and "2/2" in table
    claims = (results / "claims.md").read_text()
    assert "Verdict rule" in claims and "| GC ends below IC " in claims
    assert re.search(r"\| GC ends below IC .*\| +2 \|", claims)  # two seeds paired
    # The finished study wrote Snakemake's own HTML report (its onsuccess handler runs
    # `snakemake --report` with the run's config files): the claims, the tables, the figures.
    html = (results / "report.html").read_text()
    assert "claims.html" in html and "GC ends below IC" in _embedded_text(html)
    assert "table1.html" in html and "toy.html" in html  # every table of the study
    assert "Start with" in html  # the front page (workflow/report/workflow.rst) points to them
    for run in (workdir / "results/runs").glob("*/*/s*"):
        jobs = checkpoint.read_jsonl(run / "jobs.jsonl")
        assert [j["name"] for j in jobs] == ["train", "evaluate"]
        assert all(j["cluster"] == "local" for j in jobs)
        assert (run / "logs" / "train.err").resolve().exists()


def _embedded_text(html: str) -> str:
    """The report's text with the files it embeds (base64 data URIs) decoded."""
    import base64

    decoded = [
        base64.b64decode(m).decode("utf-8", "replace")
        for m in re.findall(r"data:text/html[^,]*;base64,([A-Za-z0-9+/=]+)", html)
    ]
    return html + "".join(decoded)


def _fake_run(root: Path, variant: str, seed: int, value: float | None) -> Path:
    run = root / "runs" / "digits8" / variant / f"s{seed}"
    run.mkdir(parents=True)
    checkpoint.write_json(
        {"dataset": "digits8", "coupling": variant, "mu": 0.5 * (variant == "gc")},
        run / "config.json",
    )
    if value is not None:
        record = {
            "snapshot_step": 100,
            "sampling": {"steps": 1, "weights": "ema", "n": 500},
            "metrics": [{"metric": "fd_digits", "value": value, "mode": ""}],
        }
        (run / "eval").mkdir()
        (run / "eval" / "final.json").write_text(json.dumps([record]))
        checkpoint.write_json({"step": 100}, run / "done.json")
    return run


def test_report_shows_a_missing_seed(tmp_path):
    runs = [
        _fake_run(tmp_path, "ic", 0, 10.0),
        _fake_run(tmp_path, "ic", 1, 12.0),
        _fake_run(tmp_path, "ic", 2, 11.0),
        _fake_run(tmp_path, "gc", 0, 8.0),
        _fake_run(tmp_path, "gc", 1, None),
        _fake_run(tmp_path, "gc", 2, 9.5),
    ]
    table = summary_table(tidy(runs)).set_index("variant")
    assert table.loc["ic", "seeds"] == "3/3" and table.loc["gc", "seeds"] == "2/3"
    assert table.loc["gc", "missing seeds"] == "1"
    assert table.loc["gc", "mean"] == pytest.approx(8.75)  # seeds 0 and 2 only
    assert table.loc["gc", "pairs"] == 2  # paired difference over the seeds both finished
    assert table.loc["ic", "ci95"] == pytest.approx(2.4841, abs=1e-3)  # t(0.975, 2) * 1 / sqrt(3)
    written = report(tmp_path, runs, {"digits8": "table1"})
    markdown = (tmp_path / "tables" / "table1.md").read_text()
    assert "2/3" in markdown and "| 1 " in markdown.replace("|               1 |", "| 1 |")
    assert "digits8/gc/s1" in (tmp_path / "README.md").read_text()
    assert tmp_path / "tidy.csv" in written


def test_launch_reattaches_to_a_live_job(tmp_path):
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "gcbench",
        "launch",
        "train",
        "--cluster",
        "local",
        "--recipe",
        "digits8-ic",
        "--set",
        "total_steps=150",
        "--set",
        "model_channels=8",
        "--set",
        "batch_size=16",
        "--set",
        "device=cpu",
        "--threads",
        "1",
        "--run-dir",
        str(run),
    ]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (run / "job-train.json").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.2)
    job_id = checkpoint.read_json(run / "job-train.json")["job_id"]
    first.send_signal(signal.SIGKILL)  # the driver dies; the job keeps running
    first.wait()
    assert os.path.exists(f"/proc/{job_id}") and not (run / "done.json").exists()
    second = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"re-attaching to local job {job_id}" in second.stdout
    assert len(checkpoint.read_jsonl(run / "jobs.jsonl")) == 1  # submitted once
    assert (run / "done.json").exists()


def test_launch_reuses_a_job_that_finished_while_no_launcher_waited(tmp_path):
    run = tmp_path / "run"
    args = [
        *(sys.executable, "-m", "gcbench", "launch", "train", "--cluster", "local"),
        *("--recipe", "digits8-ic", "--set", "total_steps=20", "--set", "model_channels=8"),
        *("--set", "batch_size=16", "--set", "device=cpu", "--threads", "1"),
        *("--run-dir", str(run)),
    ]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "job-train.json").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # the driver dies; the job finishes on its own
    first.wait()
    record = checkpoint.read_json(run / "job-train.json")
    while os.path.exists(f"/proc/{record['job_id']}"):
        assert time.time() < deadline + 120
        time.sleep(0.2)
    # What Snakemake's --rerun-incomplete does before running the rule again.
    (run / "done.json").unlink()
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already finished; using its result" in second.stdout
    assert f"restored {run / 'done.json'}" in second.stdout
    assert checkpoint.read_json(run / "done.json")["step"] == 20
    assert len(checkpoint.read_jsonl(run / "jobs.jsonl")) == 1  # not submitted again
    # Asking again (e.g. --forcerun) for a run that finished with this config submits nothing.
    third = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "finished earlier with this config; nothing submitted" in third.stdout
    assert len(checkpoint.read_jsonl(run / "jobs.jsonl")) == 1


def test_launch_fails_with_the_job_error(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gcbench",
            "launch",
            "eval",
            "--cluster",
            "local",
            "--run-dir",
            str(tmp_path / "run"),
            "--",
            "--n",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "failed" in out.stdout + out.stderr
    assert "is not a run directory: it has no config.json" in out.stdout + out.stderr


def test_preempted_training_job_requeues_and_resumes_exactly(tmp_path, uninterrupted):
    import torch
    from gcbench.launch import TrainJob, make_executor

    overrides = [
        "model_channels=8",
        "batch_size=16",
        "total_steps=60",
        "log_every=1",
        "snapshot_every=1000",
        "checkpoint_every=1000",
        "device=cpu",
        "dropout=0.1",
        "keep_state=true",  # compared below with the uninterrupted run's final state
    ]
    run = tmp_path / "preempted"
    job = make_executor("local", tmp_path / "jobs", None, "train").submit(
        TrainJob("digits8-gc", overrides, str(run), threads=1)
    )
    deadline = time.time() + 120
    while len(checkpoint.read_jsonl(run / "metrics.jsonl")) < 3:
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.1)
    # SIGUSR2 is what SLURM sends before a preemption or the time limit. Send it to the task,
    # the controller's child (submitit's local controller itself only forwards its timeout).
    controller = int(job.job_id)
    (task,) = map(int, Path(f"/proc/{controller}/task/{controller}/children").read_text().split())
    os.kill(task, signal.SIGUSR2)
    assert list(job.result()) == [str(run / "done.json")]
    assert "checkpointed" in job.stdout()
    events = [p["event"] for p in checkpoint.read_jsonl(run / "provenance.jsonl")]
    assert events == ["start", "resume"]
    a = checkpoint.load(run / "state.pt")
    b = uninterrupted("digits8-gc", overrides, tmp_path / "straight")
    for part in ("net", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert a["step"] == b["step"] == 60


@pytest.mark.slow
def test_a_failed_run_still_gets_the_tables_with_it_listed(workdir):
    (workdir / "fail.yaml").write_text(
        "cluster: local\nthreads_per_job: 1\n"
        "eval: {n: 100, curve_n: 50, steps: [1], weights: [ema], device: cpu}\n"
        "experiments:\n  digits8:\n    dataset: digits8\n    seeds: [0]\n"
        "    set: [total_steps=10, batch_size=16, mlp_hidden=32, snapshot_every=5, log_every=5]\n"
        "    variants:\n      ic: {coupling: ic}\n"
        # Lion at lr=1e30: the loss is NaN after the first update, so this run fails.
        "      gc: {coupling: gc, set: [lr=1e30]}\n"
    )
    out = _snakemake(workdir, "--cores", "2", "--keep-going", "--configfile", "fail.yaml")
    assert out.returncode != 0 and "Error in rule train" in out.stdout + out.stderr
    table = (workdir / "results/fail/tables/table1.md").read_text()
    assert re.search(r"\| digits8 +\| ic .*\| 1/1 ", table)
    # The failed run: 0 of 1 seeds, no pair, seed 0 listed as missing.
    assert re.search(r"\| digits8 +\| gc .*\| 0/1 .*\| +0 \| +0 \|$", table, re.M)
    readme = (workdir / "results/fail/README.md").read_text()
    assert "results/runs/digits8/gc/s0" in readme and "missing or incomplete" in readme
    # The tables written on error do not count as done: a rerun retries the failed run.
    out = _snakemake(workdir, "-n", "--cores", "2", "--configfile", "fail.yaml")
    counts = _job_counts(out.stdout)
    assert counts["train"] == counts["evaluate"] == counts["report"] == 1


def test_hand_run_report_expects_the_configured_runs(workdir):
    _fake_run(workdir / "results", "ic", 0, 10.0)
    _fake_run(workdir / "results", "gc", 0, 8.0)
    study = workdir / "study.yaml"
    study.write_text(
        "experiments:\n  digits8:\n    dataset: digits8\n    seeds: [0, 1]\n"
        "    variants: {ic: {coupling: ic}, gc: {coupling: gc}}\n"
    )
    gcbench = [sys.executable, "-m", "gcbench", "report"]
    bare = subprocess.run(gcbench, cwd=workdir, capture_output=True, text=True)
    assert bare.returncode != 0 and "--study" in bare.stderr
    out = subprocess.run(
        [*gcbench, "--study", str(study)], cwd=workdir, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    table = summary_table(tidy([workdir / "results/runs/digits8/gc/s0"]))  # what exists: 1/1
    assert table.loc[0, "seeds"] == "1/1"
    written = (workdir / "results/study/tables/table1.md").read_text()
    # Seed 1 is configured but never started: 1 of 2 seeds, and seed 1 listed as missing.
    assert re.search(r"\| gc .*\| 1/2 .*\| +1 \|$", written, re.M)


def test_html_report_arguments_repeat_the_run_s_study():
    args = study.html_report_args(
        "/w/Snakefile",
        "/w",
        ["/w/workflow/config/paper.yaml"],
        ["eval={'n': 1000}", "seeds=[0]"],
        "results/paper/report.html",
    )
    assert args == [
        *("--snakefile", "/w/Snakefile", "--directory", "/w"),
        *("--report", "results/paper/report.html"),
        *("--configfile", "/w/workflow/config/paper.yaml"),
        *("--config", "eval={'n': 1000}", "seeds=[0]"),  # verbatim, never through a shell
    ]
    assert "--config" not in study.html_report_args("/w/Snakefile", "/w", [], [], "r.html")
