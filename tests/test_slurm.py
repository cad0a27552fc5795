"""The SLURM path on a real single-node cluster (tests/slurm/cluster.sh up), not a mocked sbatch.

Every job here goes through sbatch via submitit. Without a cluster these tests skip, unless
GCBENCH_REQUIRE_SLURM=1 (set by .ci/run), where a missing cluster is a failure.
"""

import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from gcbench import checkpoint, status, study

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
CLUSTER_YAML = ROOT / "tests" / "slurm" / "cluster.yaml"
TINY = ["mlp_hidden=64", "batch_size=16", "device=cpu"]


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    ok = shutil.which("sbatch") and subprocess.run(["scontrol", "ping"], capture_output=True)
    if not ok or ok.returncode != 0:
        message = "no SLURM cluster: start one with `tests/slurm/cluster.sh up` (as root)"
        if os.environ.get("GCBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield
    subprocess.run(["scancel", "--user", getpass.getuser()], check=False)  # leave no job behind


def _env(workdir: Path) -> dict:
    return os.environ | {"GCBENCH_CACHE": str(workdir / "cache")}


def _study_config(workdir: Path, steps: int) -> Path:
    """A two-run study (digits8 IC and GC, one seed) for `--profile slurm`."""
    config = {
        "slurm_config": str(CLUSTER_YAML),
        "threads_per_job": 1,
        "eval": {"n": 100, "curve_n": 50, "steps": [1], "weights": ["ema"], "device": "cpu"},
        "experiments": {
            "digits8": {
                "dataset": "digits8",
                "seeds": [0],
                "set": [f"total_steps={steps}", "snapshot_every=1000", "log_every=5", *TINY],
                "variants": {"ic": {"coupling": "ic"}, "gc": {"coupling": "gc"}},
            }
        },
    }
    path = workdir / "study.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _snakemake(workdir: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--profile", "slurm", *args]
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, env=_env(workdir), **kwargs
    )


def _sacct(job_ids: list[str], field: str) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", f"jobid,{field}", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if line)


def _sacct_states(job_ids: list[str]) -> dict[str, str]:
    return _sacct(job_ids, "state")


def _status(run: Path, job_id: str) -> dict:
    """`gcbench status`'s row of one run, with what squeue/sacct say of its job."""
    return status.run_status(run, 200, status.slurm_states([job_id]))


def _wait_for(condition, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def _launch_train(run: Path, *overrides: str, recipe: str = "digits8-gc") -> list[str]:
    sets = [a for o in (*TINY, *overrides) for a in ("--set", o)]
    return [
        *(sys.executable, "-m", "gcbench", "launch", "train", "--cluster", "slurm"),
        *("--slurm-config", str(CLUSTER_YAML), "--threads", "1", "--recipe", recipe),
        *sets,
        *("--run-dir", str(run)),
    ]


def _runs(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("*/*/s*"))


def _assert_every_job_went_through_sbatch_once(workdir: Path) -> list[str]:
    job_ids = []
    for run in _runs(workdir):
        jobs = checkpoint.read_jsonl(run / "jobs.jsonl")
        assert [j["name"] for j in jobs] == ["train", "evaluate"], run
        assert all(j["cluster"] == "slurm" and re.fullmatch(r"\d+", j["job_id"]) for j in jobs)
        job_ids += [j["job_id"] for j in jobs]
    assert len(set(job_ids)) == len(job_ids)
    states = _sacct_states(job_ids)
    assert set(states) == set(job_ids) and set(states.values()) == {"COMPLETED"}, states
    return job_ids


def _assert_jobs_are_named_by_run(workdir: Path, config: Path, job_ids: list[str]) -> None:
    """Every job's SLURM name (as sacct shows it) is the run's identity and the job's stage."""
    expected = {}
    for run in study.runs(json.loads(config.read_text())):
        label = f"{run.experiment}/{run.variant}/s{run.seed}"
        for job in checkpoint.read_jsonl(workdir / run.path / "jobs.jsonl"):
            expected[job["job_id"]] = f"gc:{label}:{job['name']}"
    assert set(expected) == set(job_ids)
    assert _sacct(job_ids, "jobname") == expected


def test_slurm_profile_runs_the_study_through_sbatch(workdir):
    config = _study_config(workdir, steps=20)
    out = _snakemake(workdir, "--configfile", str(config), timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert len(_runs(workdir)) == 2
    job_ids = _assert_every_job_went_through_sbatch_once(workdir)
    assert len(job_ids) == 4  # per run: one training job, one evaluation job
    _assert_jobs_are_named_by_run(workdir, config, job_ids)
    # A study is named after its config file, here "study": its report is in results/study/.
    assert "FD-digits" in (workdir / "results" / "study" / "tables" / "table1.md").read_text()


def test_killed_driver_restarts_without_submitting_twice(workdir):
    config = _study_config(workdir, steps=300)
    args = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(config)]
    # The driver and its launchers share a new session, so one killpg takes them all, as a
    # lost login session would.
    driver = subprocess.Popen(
        args,
        cwd=workdir,
        env=_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs = [workdir / "results/runs/digits8" / v / "s0" for v in ("ic", "gc")]
    # Kill the driver once both training jobs are submitted and one of them is training.
    _wait_for(
        lambda: (
            all((r / "job-train.json").exists() for r in runs)
            and any(checkpoint.read_jsonl(r / "metrics.jsonl") for r in runs)
        ),
        300,
        "both training jobs to be submitted and one to run",
    )
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    train_ids = [checkpoint.read_json(r / "job-train.json")["job_id"] for r in runs]
    assert "RUNNING" in _sacct_states(train_ids).values()  # the jobs outlive their driver

    unlock = _snakemake(workdir, "--configfile", str(config), "--unlock", timeout=120)
    assert unlock.returncode == 0, unlock.stderr
    out = _snakemake(workdir, "--configfile", str(config), timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    _assert_every_job_went_through_sbatch_once(workdir)
    for run, job_id in zip(runs, train_ids, strict=True):
        log = (workdir / "results/logs/train/digits8" / run.parent.name / "s0.log").read_text()
        # Re-attached to the live job, or it finished while no driver waited (its result, or
        # its done.json if the job had already written it): never a second submission.
        taken = (f"re-attaching to slurm job {job_id}", "already finished", "finished earlier")
        assert any(t in log for t in taken), log
        assert (run / "done.json").exists()


def test_usr2_preemption_requeues_and_resumes_bitwise(tmp_path, uninterrupted):
    overrides = ["total_steps=200", "log_every=1", "snapshot_every=1000", "dropout=0.1"]
    overrides.append("keep_state=true")  # compared with the uninterrupted final state
    run = tmp_path / "preempted"
    launcher = subprocess.Popen(
        _launch_train(run, *overrides), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for(lambda: len(checkpoint.read_jsonl(run / "metrics.jsonl")) >= 3, 300, "training")
    job_id = checkpoint.read_json(run / "job-train.json")["job_id"]
    now = _status(run, job_id)
    assert (now["state"], now["slurm_state"], now["job_id"]) == ("running", "RUNNING", job_id)
    assert 0 < now["step"] < 200 and now["eta_s"] > 0 and now["requeues"] == 0
    # What SLURM sends before a preemption or the time limit (#SBATCH --signal=USR2@...).
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    # The requeued job waits (cred_expire) under the same id before it starts again.
    _wait_for(lambda: _status(run, job_id)["state"] == "preempted, requeued", 120, "a requeue")
    output, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, output
    after = _status(run, job_id)  # done from the job's result, whatever SLURM says yet
    assert (after["state"], after["step"], after["eta_s"], after["requeues"]) == (
        "done",
        200,
        None,
        1,
    )
    _wait_for(lambda: _status(run, job_id)["slurm_state"] == "COMPLETED", 60, "sacct")
    assert "checkpointed" in (run / "logs" / "train.out").read_text()
    events = [p["event"] for p in checkpoint.read_jsonl(run / "provenance.jsonl")]
    assert events == ["start", "resume"]
    assert [p["slurm_job_id"] for p in checkpoint.read_jsonl(run / "provenance.jsonl")] == [
        job_id,
        job_id,
    ]  # requeued: the same job, not a second submission
    assert len(checkpoint.read_jsonl(run / "jobs.jsonl")) == 1

    a = checkpoint.load(run / "state.pt")
    b = uninterrupted("digits8-gc", [*TINY, *overrides], tmp_path / "straight")
    assert a["step"] == b["step"] == 200
    for part in ("net", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_failing_job_fails_its_rule_with_the_traceback(workdir):
    config = _study_config(workdir, steps=40)
    text = config.read_text().replace('"log_every=5"', '"log_every=1", "lr=1e30"')
    config.write_text(text)  # Lion at lr=1e30: the loss is NaN after the first update
    out = _snakemake(workdir, "--configfile", str(config), timeout=1200)
    assert out.returncode != 0
    shown = out.stdout + out.stderr
    assert "Traceback (most recent call last)" in shown
    assert "NonFiniteLossError: loss is nan" in shown
    assert re.search(r"Error in rule train", shown)
    assert not (workdir / "results/runs/digits8/ic/s0/done.json").exists()


def test_two_gpu_job_trains_data_parallel_and_survives_preemption(tmp_path, uninterrupted):
    import yaml
    from test_distributed import OVERRIDES, _max_diff

    two_gpus = tmp_path / "cluster.yaml"
    settings = yaml.safe_load(CLUSTER_YAML.read_text()) | {"gpus_per_node": 2}
    two_gpus.write_text(yaml.safe_dump(settings))
    overrides = [*OVERRIDES, "total_steps=150"]  # the later total_steps wins
    run = tmp_path / "ddp"
    args = _launch_train(run, *overrides)
    args[args.index(str(CLUSTER_YAML))] = str(two_gpus)
    launcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: len(checkpoint.read_jsonl(run / "metrics.jsonl")) >= 3, 300, "training")
    (record,) = checkpoint.read_jsonl(run / "jobs.jsonl")
    # SLURM signals every task; only rank 0 checkpoints, and all ranks stop at the same step.
    subprocess.run(["scancel", "--signal=USR2", record["job_id"]], check=True)
    output, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, output
    # One task per GPU, started by srun inside the sbatch job.
    tasks = subprocess.run(
        ["sacct", "-j", record["job_id"], "-n", "-P", "-o", "jobid,ntasks,alloctres"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gpu=2" in tasks and re.search(r"\.0\|2\|", tasks), tasks
    starts = checkpoint.read_jsonl(run / "provenance.jsonl")
    assert [(p["event"], p["world_size"]) for p in starts] == [("start", 2), ("resume", 2)]
    assert 0 < starts[1]["step"] < 150

    a = checkpoint.load(run / "state.pt")
    b = uninterrupted("digits8-gc", [*TINY, *overrides], tmp_path / "one")
    assert a["step"] == b["step"] == 150 and len(a["rng"]["ranks"]) == 2
    # Summation order only (see test_distributed.py); measured after 150 Adam steps: 5.8e-6.
    assert _max_diff(a["net"], b["net"]) < 1e-3


def test_cancelled_job_is_reported_failed(tmp_path):
    run = tmp_path / "cancelled"
    launcher = subprocess.Popen(
        _launch_train(run, "total_steps=5000", "log_every=1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: len(checkpoint.read_jsonl(run / "metrics.jsonl")) >= 1, 300, "training")
    job_id = checkpoint.read_json(run / "job-train.json")["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    output, _ = launcher.communicate(timeout=300)  # nothing hangs
    assert launcher.returncode != 0
    assert f"job {job_id} (train) failed" in output
    assert "CANCELLED" in output
    assert _sacct_states([job_id])[job_id].startswith("CANCELLED")


def _sbatch_flags(script: Path) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script.read_text(), flags=re.M))


def test_each_experiment_and_kind_of_job_gets_its_own_resources(workdir):
    """cluster.yaml's train and evaluate sections, then each experiment's `slurm:` block, as
    the sbatch scripts say and as SLURM recorded them."""
    cluster = yaml.safe_load(CLUSTER_YAML.read_text()) | {
        "train": {"timeout_min": 50, "mem_gb": 2, "cpus_per_task": 1},
        "evaluate": {"timeout_min": 40, "mem_gb": 1, "gpus_per_node": 1},
    }
    (workdir / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    config = json.loads(_study_config(workdir, steps=10).read_text())
    config["slurm_config"] = str(workdir / "cluster.yaml")
    exp = config["experiments"].pop("digits8")
    config["experiments"] = {
        "small": exp | {"variants": {"ic": {"coupling": "ic"}}},
        "big": exp
        | {
            "variants": {"gc": {"coupling": "gc"}},
            "slurm": {"train": {"timeout_min": 70, "mem_gb": 3}, "evaluate": {"timeout_min": 45}},
        },
    }
    path = workdir / "two.yaml"
    path.write_text(json.dumps(config))
    out = _snakemake(workdir, "--configfile", str(path), timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    want = {
        ("small", "train"): ("50", "2GB", "1"),
        ("small", "evaluate"): ("40", "1GB", "1"),
        ("big", "train"): ("70", "3GB", "1"),
        ("big", "evaluate"): ("45", "1GB", "1"),
    }
    limits = {}
    for (name, job), (time_min, mem, gpus) in want.items():
        run = next((workdir / "results/runs" / name).glob("*/s0"))
        (script,) = (run / "submitit" / job).glob("*_submission.sh")
        flags = _sbatch_flags(script)
        assert (flags["time"], flags["mem"], flags["gpus-per-node"]) == (time_min, mem, gpus)
        assert flags["cpus-per-task"] == "1" and flags["ntasks-per-node"] == "1"
        job_id = checkpoint.read_json(run / f"job-{job}.json")["job_id"]
        limits[name, job] = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "timelimit,reqmem", "-j", job_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    assert limits == {
        ("small", "train"): "00:50:00|2G",
        ("small", "evaluate"): "00:40:00|1G",
        ("big", "train"): "01:10:00|3G",
        ("big", "evaluate"): "00:45:00|1G",
    }, limits


def _sacct_lines(job_id: str, expect: str | None = None) -> str:
    """sacct's lines for a job and its steps once it has ended (printed: the scenario's
    record). A launcher may hold the result before SLURM has closed the batch step. On a
    reused test cluster an older job of the same id is listed too, and may be the only one
    for a moment: with `expect`, wait until a line matching it is there."""
    query = ["sacct", "-D", "-j", job_id, "-n", "-P", "-o", "jobid,jobname,state,elapsed,exitcode"]

    def lines() -> str:
        return subprocess.run(query, capture_output=True, text=True, check=True).stdout

    _wait_for(
        lambda: _sacct_states([job_id]).get(job_id) not in (None, "RUNNING", "PENDING"),
        120,
        f"job {job_id} to end",
    )
    if expect is not None:
        _wait_for(lambda: re.search(expect, lines(), re.M), 120, f"sacct to list {expect}", 1)
    out = lines()
    print(f"sacct -j {job_id}:\n{out}")
    return out


@pytest.mark.parametrize("how", [["scancel", "--signal=TERM"], ["scontrol", "requeue"]])
def test_sigterm_and_requeue_save_and_resume_bitwise(tmp_path, uninterrupted, how):
    # No step- or time-based state before the end: a resume after step 0 proves that the state
    # was saved on the signal itself.
    overrides = ["total_steps=300", "log_every=1", "snapshot_every=1000", "dropout=0.1"]
    overrides += ["checkpoint_every=100000", "checkpoint_minutes=0", "keep_state=true"]
    run = tmp_path / "preempted"
    launcher = subprocess.Popen(
        _launch_train(run, *overrides), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for(lambda: len(checkpoint.read_jsonl(run / "metrics.jsonl")) >= 3, 300, "training")
    job_id = checkpoint.read_json(run / "job-train.json")["job_id"]
    subprocess.run([*how, job_id], check=True)
    output, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, output
    starts = checkpoint.read_jsonl(run / "provenance.jsonl")
    assert [p["event"] for p in starts] == ["start", "resume"]
    assert 0 < starts[1]["step"] < 300
    assert {p["slurm_job_id"] for p in starts} == {job_id}  # requeued, not resubmitted
    assert len(checkpoint.read_jsonl(run / "jobs.jsonl")) == 1
    assert "COMPLETED" in _sacct_lines(job_id)

    a = checkpoint.load(run / "state.pt")
    b = uninterrupted("digits8-gc", [*TINY, *overrides], tmp_path / "straight")
    assert a["step"] == b["step"] == 300
    for part in ("net", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_sigkill_loses_at_most_the_time_checkpoint_interval(tmp_path):
    interval_s = 3.0
    # Long enough that the job is still training when it is killed, even on a quiet machine.
    overrides = ["total_steps=5000", "log_every=1", "snapshot_every=100000"]
    overrides += ["checkpoint_every=100000", f"checkpoint_minutes={interval_s / 60}"]
    run = tmp_path / "killed"
    args = _launch_train(run, *overrides)
    launcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: (run / "state.pt").exists(), 300, "a time-based state")
    time.sleep(2.5 * interval_s)  # then kill somewhere between two time-based states
    job_id = checkpoint.read_json(run / "job-train.json")["job_id"]
    # A hard kill of the training process itself, as the OOM killer or a lost node would:
    # `scancel --signal=KILL` is a cancellation, which sends SIGTERM first.
    pids = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True)
    # PID JOBID STEPID LOCALID GLOBALID: task 0 of step 0 is the training process.
    rows = [line.split() for line in pids.stdout.splitlines()[1:]]
    trainer = [int(r[0]) for r in rows if r[2:5] == ["0", "0", "0"]]
    assert len(trainer) == 1 and "submitit" in _cmdline(str(trainer[0])), pids.stdout
    os.kill(trainer[0], signal.SIGKILL)
    output, _ = launcher.communicate(timeout=300)
    assert launcher.returncode != 0  # a hard kill: no requeue, the rule fails
    _sacct_lines(job_id)
    saved = checkpoint.load(run / "state.pt")["step"]
    rows = {r["step"]: r["time"] for r in checkpoint.read_metrics(run)}
    last = max(rows)
    assert 0 < saved < last < 5000
    lost_s = rows[last] - rows[saved]
    print(f"killed at step {last}; state at step {saved}; lost {lost_s:.2f} s of training")
    assert lost_s <= interval_s + 1.0  # one step and the save itself on top of the interval

    # A new launch resumes from that state and finishes.
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    starts = checkpoint.read_jsonl(run / "provenance.jsonl")
    assert [(p["event"], p["step"]) for p in starts] == [("start", 0), ("resume", saved)]


def test_the_driver_runs_as_a_job_and_finishes_a_tiny_study(workdir):
    """slurm/driver.sbatch: Snakemake itself in a CPU job, its launchers submitting from inside
    it; the report, listed in cluster_rules, as a job of its own."""
    path = _study_config(workdir, steps=10)
    config = json.loads(path.read_text()) | {"cluster_rules": ["report"], "study": "tiny"}
    path.write_text(json.dumps(config))
    # One CPU for the driver, so that the node's other core runs the jobs.
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=1", "--mem=2G", "--time=60"]
        + ["slurm/driver.sbatch", "--configfile", str(path)],
        cwd=workdir,
        env=_env(workdir) | {"GCBENCH_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    driver = submitted.stdout.strip().split(";")[0]
    ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")
    _wait_for(lambda: _sacct_states([driver]).get(driver, "").startswith(ended), 1500, "the driver")
    log = (workdir / f"gcbench-driver-{driver}.log").read_text()
    lines = _sacct_lines(driver)
    assert re.search(rf"^{driver}\|gcbench-driver\|COMPLETED", lines, re.M), log[-3000:]
    assert len(_assert_every_job_went_through_sbatch_once(workdir)) == 4
    report = checkpoint.read_json(workdir / "results" / "tiny" / "job-report.json")
    assert _sacct_states([report["job_id"]]) == {report["job_id"]: "COMPLETED"}
    assert "FD-digits" in (workdir / "results" / "tiny" / "tables" / "table1.md").read_text()


def _idle_nodes() -> int:
    out = subprocess.run(["sinfo", "-h", "-t", "idle,mix", "-o", "%D"], capture_output=True)
    return sum(int(n) for n in out.stdout.split() or [0])


def test_two_nodes_train_one_run_data_parallel(tmp_path, uninterrupted):
    """nodes: 2 with one GPU each: two tasks on two nodes, rendezvous from SLURM's environment.
    Needs two nodes: `tests/slurm/two_nodes.sh up`, then SLURM_CONF=/tmp/gcbench-slurm2/
    slurm.conf (the one-node cluster of cluster.sh skips it)."""
    import yaml
    from test_distributed import OVERRIDES, _max_diff

    if _idle_nodes() < 2:
        pytest.skip("needs two idle nodes; tests/slurm/cluster.sh starts one")
    settings = yaml.safe_load(CLUSTER_YAML.read_text())
    settings["train"] = {"nodes": 2, "gpus_per_node": 1}
    two_nodes = tmp_path / "cluster.yaml"
    two_nodes.write_text(yaml.safe_dump(settings))
    run = tmp_path / "ddp"
    args = _launch_train(run, *OVERRIDES)
    args[args.index(str(CLUSTER_YAML))] = str(two_nodes)
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = checkpoint.read_jsonl(run / "jobs.jsonl")
    steps = _sacct_lines(record["job_id"])
    assert re.search(r"\.0\|", steps)
    nodes = subprocess.run(
        ["sacct", "-j", f"{record['job_id']}.0", "-n", "-P", "-o", "nnodes,ntasks"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert nodes[0] == "2|2", nodes
    assert checkpoint.read_jsonl(run / "provenance.jsonl")[0]["world_size"] == 2
    a = checkpoint.load(run / "state.pt")
    b = uninterrupted("digits8-gc", [*TINY, *OVERRIDES], tmp_path / "one")
    assert _max_diff(a["net"], b["net"]) < 1e-3


def test_data_preparation_runs_as_a_cluster_job_when_asked(workdir):
    from PIL import Image

    folder = workdir / "raw_church"
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (80, 96), (40 * k, 90, 200)).save(folder / f"{k}.png")
    config = {
        "slurm_config": str(CLUSTER_YAML),
        "cluster_rules": ["prepare"],
        "prepare_data": {"lsun_church64": str(folder)},
        "experiments": {
            "church": {
                "dataset": "lsun_church64",
                "seeds": [0],
                "variants": {"ic": {"coupling": "ic"}},
            }
        },
    }
    (workdir / "church.yaml").write_text(json.dumps(config))
    target = "data/lsun_church64/train.npy"
    out = _snakemake(workdir, target, "--configfile", "church.yaml", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (workdir / target).exists()
    record = checkpoint.read_json(workdir / "data/lsun_church64/job-prepare.json")
    flags = _sbatch_flags(next(Path(record["folder"]).glob("*_submission.sh")))
    assert "gpus-per-node" not in flags  # the prepare section: CPU only
    # Named like every job of a study: gc:<what it is for>:prepare.
    # (A search, not the first line: `sacct -D` also lists an older job of the same id when a
    # reused test cluster restarted its job ids.)
    expect = rf"^{record['job_id']}\|gc:[^|]*:prepare\|COMPLETED"
    lines = _sacct_lines(record["job_id"], expect)
    assert re.search(expect, lines, re.M), lines
