"""Submit a training or evaluation job through submitit, wait for it, and survive restarts.

- `cluster` is always passed explicitly: "slurm" on a cluster, "local" for the embedded default
  and the tests (submitit's "debug" backend would open a debugger on errors).
- SLURM options come from a YAML file (slurm/cluster.yaml), never from code.
- `TrainJob` is Checkpointable: on SIGUSR2 (preemption or timeout) it stops the training loop at
  the next step boundary, where the loop saves its resume state, and requeues itself; the
  requeued job resumes exactly (train.py).
- The job id is written to `RUN_DIR/job-<name>.json` as soon as the job is submitted. A launcher
  started again while that job is queued or running re-attaches to it instead of submitting a
  second one.
- The job's stdout/stderr are linked from `RUN_DIR/logs/`. A failed job makes `launch` raise
  with the job's own traceback.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import submitit
import yaml

from . import checkpoint

CLUSTERS = ("local", "slurm")
# slurm/cluster.yaml key -> submitit AutoExecutor parameter
_SLURM_KEYS = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "timeout_min": "timeout_min",
    "signal_delay_s": "slurm_signal_delay_s",
    "max_num_timeout": "slurm_max_num_timeout",
    "additional_parameters": "slurm_additional_parameters",
    "setup": "slurm_setup",
}


class LaunchError(RuntimeError):
    pass


class TrainJob(submitit.helpers.Checkpointable):
    """Train (or resume) one run inside a submitit job."""

    def __init__(self, recipe: str, overrides: list[str], run_dir: str, threads: int = 0):
        self.recipe, self.overrides, self.run_dir, self.threads = (
            recipe,
            overrides,
            run_dir,
            threads,
        )
        self._stop: threading.Event | None = None  # made in __call__: locks do not pickle
        self._worker: threading.Thread | None = None

    def __call__(self) -> str:
        import torch

        from .recipes import resolve
        from .train import train

        if self.threads:
            torch.set_num_threads(self.threads)
        config = resolve(self.recipe, self.overrides)
        self._stop = threading.Event()
        outcome: dict = {}

        def work() -> None:
            try:
                outcome["status"] = train(config, self.run_dir, lambda step: self._stop.is_set())
            except BaseException as err:  # re-raised in the main thread, traceback intact
                outcome["error"] = err

        # Training runs in a worker thread so that the main thread stays free for submitit's
        # signal handler, which calls checkpoint() below.
        self._worker = threading.Thread(target=work, name="train")
        self._worker.start()
        while self._worker.is_alive():
            self._worker.join(timeout=0.5)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["status"]

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        if self._stop is not None:
            self._stop.set()
        if self._worker is not None:
            self._worker.join()  # the loop saves its state at the step boundary, then returns
        print(f"checkpointed {self.run_dir}; requeueing", flush=True)
        return submitit.helpers.DelayedSubmission(
            TrainJob(self.recipe, self.overrides, self.run_dir, self.threads)
        )


class CommandJob(submitit.helpers.Checkpointable):
    """Run a `gcbench` command (e.g. eval) inside a submitit job; requeued from the start if
    preempted, which is cheap next to training."""

    def __init__(self, args: list[str], threads: int = 0):
        self.args, self.threads = args, threads

    def __call__(self) -> None:
        import torch

        from .cli import main

        if self.threads:
            torch.set_num_threads(self.threads)
        main(self.args, standalone_mode=False)


def slurm_parameters(path: str | Path | None) -> dict:
    """Read slurm/cluster.yaml into submitit parameters; unknown keys are an error."""
    if path is None:
        return {}
    values = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(values) - set(_SLURM_KEYS)
    if unknown:
        raise LaunchError(
            f"{path}: unknown keys {sorted(unknown)}; valid keys: {', '.join(_SLURM_KEYS)}"
        )
    return {_SLURM_KEYS[k]: v for k, v in values.items() if v is not None}


def make_executor(cluster: str, folder: Path, slurm_config: str | Path | None, name: str):
    if cluster not in CLUSTERS:
        raise LaunchError(f"cluster={cluster!r}: use one of {CLUSTERS}")
    params = slurm_parameters(slurm_config) if cluster == "slurm" else {}
    max_timeouts = params.pop("slurm_max_num_timeout", 20)
    executor = submitit.AutoExecutor(
        folder=folder, cluster=cluster, slurm_max_num_timeout=max_timeouts
    )
    if cluster == "local":
        params = {"timeout_min": 7 * 24 * 60, "gpus_per_node": 0}  # no local timeout signal
    executor.update_parameters(name=name, **params)
    return executor


def _record_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"job-{name}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _job(record: dict):
    folder = Path(record["folder"])
    if record["cluster"] == "slurm":
        return submitit.SlurmJob(folder, record["job_id"])
    return submitit.local.local.LocalJob(folder, record["job_id"])


def _is_live(record: dict) -> bool:
    job = _job(record)
    if record["cluster"] == "local":  # the local job id is its controller's pid
        return _pid_alive(int(record["job_id"])) and not job.paths.result_pickle.exists()
    return not job.done(force_check=True)


def _link_logs(run_dir: Path, name: str, job) -> None:
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    for suffix, target in (("out", job.paths.stdout), ("err", job.paths.stderr)):
        link = logs / f"{name}.{suffix}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(os.path.relpath(target, logs)))


def _wait(record: dict, job, poll_s: float):
    """The job's result; raises LaunchError with the job's error if it failed."""
    if record["cluster"] == "local" and getattr(job, "_process", None) is None:
        # Re-attached to a local job another process started: poll its controller.
        while _pid_alive(int(record["job_id"])) and not job.paths.result_pickle.exists():
            time.sleep(poll_s)
    try:
        return job.result()
    except Exception as err:  # FailedJobError, UncompletedJobError: the job's own message
        stderr = job.paths.stderr
        tail = stderr.read_text()[-4000:] if stderr.exists() else ""
        message = f"job {record['job_id']} ({record['name']}) failed:\n{err}\n{tail}"
        raise LaunchError(message) from None


def launch(
    job_fn,
    name: str,
    run_dir: str | Path,
    cluster: str,
    slurm_config: str | Path | None = None,
    poll_s: float = 2.0,
    log=print,
):
    """Submit `job_fn` (or re-attach to the live job already submitted for this run and name)
    and wait for it to finish."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path = _record_path(run_dir, name)
    if record_path.exists():
        record = checkpoint.read_json(record_path)
        if _is_live(record):
            job = _job(record)
            log(f"re-attaching to {record['cluster']} job {record['job_id']} ({name}, {run_dir})")
            return _wait(record, job, poll_s)
    executor = make_executor(cluster, run_dir / "submitit" / name, slurm_config, name)
    job = executor.submit(job_fn)
    record = {
        "cluster": cluster,
        "job_id": job.job_id,
        "name": name,
        "folder": str(job.paths.folder),
        "submitted": time.time(),
    }
    checkpoint.write_json(record, record_path)
    history = run_dir / "jobs.jsonl"
    checkpoint.append_jsonl(record, history)
    _link_logs(run_dir, name, job)
    log(f"submitted {cluster} job {job.job_id} ({name}, {run_dir}); logs in {run_dir / 'logs'}")
    return _wait(record, job, poll_s)
