"""`gcbench status` on a tiny real study, launched through submitit's local executor (no SLURM:
the scheduler columns stay empty and nothing waits on them)."""

import json
import subprocess
import sys
import time

import pytest
from gcbench import checkpoint, status, study

pytestmark = pytest.mark.slow

TINY = ["mlp_hidden=64", "batch_size=32", "device=cpu", "log_every=20", "snapshot_every=100000"]
STUDY = {
    "experiments": {
        "digits8": {
            "dataset": "digits8",
            "seeds": [0, 1],
            "set": TINY,
            "variants": {
                "ic": {"coupling": "ic", "set": ["total_steps=40"]},
                "gc": {"coupling": "gc", "set": ["total_steps=6000"]},
                "bad": {"coupling": "ic", "set": ["total_steps=40", "log_every=1", "lr=1e30"]},
            },
        }
    }
}


def _launch(root, run: study.Run) -> subprocess.Popen:
    sets = [a for o in run.overrides for a in ("--set", o)]
    command = [sys.executable, "-m", "gcbench", "launch", "train", "--cluster", "local"]
    command += ["--threads", "1", "--recipe", run.recipe, *sets, "--run-dir", run.path]
    return subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _rows(root) -> dict[str, dict]:
    return {f"{r['variant']}/s{r['seed']}": r for r in status.study_status(STUDY, root)}


def test_status_follows_a_study_while_it_trains_and_after(tmp_path):
    runs = {f"{r.variant}/s{r.seed}": r for r in study.runs(STUDY)}
    assert {r["state"] for r in _rows(tmp_path).values()} == {"not started"}

    done = _launch(tmp_path, runs["ic/s0"])
    assert done.wait(timeout=300) == 0, done.stdout.read()
    failing = _launch(tmp_path, runs["bad/s0"])
    assert failing.wait(timeout=300) != 0  # the loss is not finite after the first update

    long = _launch(tmp_path, runs["gc/s0"])
    metrics = tmp_path / runs["gc/s0"].path / "metrics.jsonl"
    deadline = time.time() + 300
    while len(checkpoint.read_jsonl(metrics)) < 2:
        assert long.poll() is None and time.time() < deadline, "the long run never logged"
        time.sleep(0.2)
    started = time.perf_counter()
    rows = _rows(tmp_path)
    assert time.perf_counter() - started < 5  # no waiting on jobs

    mid = rows["gc/s0"]
    assert mid["state"] == "running" and mid["stage"] == "train"
    assert 0 < mid["step"] < mid["total_steps"] == 6000 and mid["step"] % 20 == 0
    assert mid["steps_per_s"] > 0 and mid["eta_s"] > 0 and mid["loss"] > 0
    assert mid["slurm_state"] is None  # a local job: nothing to ask a scheduler

    finished = rows["ic/s0"]
    assert (finished["state"], finished["step"], finished["total_steps"]) == ("done", 40, 40)
    assert finished["eta_s"] is None and finished["requeues"] == 0
    job = checkpoint.read_json(tmp_path / runs["ic/s0"].path / "job-train.json")
    assert finished["job_id"] == job["job_id"]
    assert finished["job_name"] == f"gc:{runs['ic/s0'].path}:train"  # launched by hand

    assert rows["bad/s0"]["state"] == "failed"
    assert rows["ic/s1"]["state"] == rows["gc/s1"]["state"] == "not started"

    table = status.render(list(rows.values()))
    (line,) = [line for line in table.splitlines() if line.startswith("| digits8/gc/s0 ")]
    assert line.split("|")[2].strip() == "running", table
    print(table)  # the README's example
    assert table.endswith("\n\n1 done, 3 not started, 1 running, 1 failed")

    assert long.wait(timeout=600) == 0
    after = _rows(tmp_path)["gc/s0"]
    assert (after["state"], after["step"], after["eta_s"]) == ("done", 6000, None)
    json.dumps(after)  # what --json prints
