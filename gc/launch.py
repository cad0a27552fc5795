"""Submit a training or evaluation job through submitit, wait for it, and survive restarts.

- `cluster` is always passed explicitly: "slurm" on a cluster, "local" for the embedded default
  and the tests (submitit's "debug" backend would open a debugger on errors).
- SLURM options come from a YAML file (slurm/cluster.yaml, one section per kind of job:
  resources.py), never from code; a SLURM job is never submitted without them.
- `TrainJob` is Checkpointable: on SIGUSR2 (preemption or timeout) and on SIGTERM (preemption,
  `scontrol requeue`, `scancel`; `preempt_signal` in cluster.yaml) it stops the training loop
  at the next step boundary, where the loop saves its resume state, and requeues itself unless
  SLURM is already requeueing or cancelling it; the requeued job resumes exactly (train.py).
- The job id is written to `RUN_DIR/job-<name>.json` as soon as the job is submitted. A launcher
  started again while that job is queued or running re-attaches to it instead of submitting a
  second one; if the job finished successfully while no launcher was waiting for it, its result
  is used as it is. Jobs return
  the text of their declared outputs, so that outputs Snakemake deleted on `--rerun-incomplete`
  after a driver crash are written back (`restore_outputs`) instead of being recomputed.
- Each job's SLURM name is `gc:<run>:<name>` (e.g. `gc:cifar10/gc/s0:train`), so that
  `squeue` and `sacct` tell the runs of a study apart; the workflow passes the run's identity.
- The job's stdout/stderr are linked from `RUN_DIR/logs/`. A failed job makes `launch` raise
  with the job's own traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import submitit

from . import checkpoint, resources

CLUSTERS = ("local", "slurm")


class LaunchError(RuntimeError):
    pass


class TrainJob(submitit.helpers.Checkpointable):
    """Train (or resume) one run inside a submitit job."""

    section = "train"  # its resources in slurm/cluster.yaml

    def __init__(
        self,
        recipe: str,
        overrides: list[str],
        run_dir: str,
        threads: int = 0,
        tasks: int = 1,
        preempt_signal: str = "TERM",
    ):
        self.recipe, self.overrides, self.run_dir = recipe, overrides, run_dir
        self.threads, self.tasks = threads, tasks  # tasks: processes (one per GPU)
        self.preempt_signal = preempt_signal  # checkpoints and requeues, as SIGUSR2 does
        self._stop: threading.Event | None = None  # made in __call__: locks do not pickle
        self._worker: threading.Thread | None = None

    @property
    def args(self) -> list[str]:
        """What the job computes; a finished job is reused only for the same arguments."""
        return ["train", "--recipe", self.recipe, *(f"--set={o}" for o in self.overrides)]

    def __call__(self) -> dict[str, str]:
        import torch

        from . import distributed
        from .recipes import resolve
        from .train import train

        if self.threads:
            torch.set_num_threads(self.threads)
        config = resolve(self.recipe, self.overrides)
        # One task per GPU: several tasks train one run data-parallel (distributed.py).
        shard = distributed.init_from_submitit(config.device)
        _checkpoint_also_on(self.preempt_signal, self)
        self._stop = threading.Event()
        outcome: dict = {}

        def work() -> None:
            try:
                should_stop = lambda step: self._stop.is_set()
                outcome["status"] = train(config, self.run_dir, should_stop, shard=shard)
            except BaseException as err:  # re-raised in the main thread, traceback intact
                outcome["error"] = err

        # Training runs in a worker thread so that the main thread stays free for submitit's
        # signal handler, which calls checkpoint() below.
        self._worker = threading.Thread(target=work, name="train")
        self._worker.start()
        while self._worker.is_alive():
            self._worker.join(timeout=0.5)
        distributed.close(shard)
        if "error" in outcome:
            raise outcome["error"]
        if not shard.is_main:  # rank 0 returns the outputs (and requeues on preemption)
            return {}
        if outcome["status"] != "done":  # stopped without a checkpoint request: cannot happen
            raise LaunchError(f"training in {self.run_dir} stopped early: {outcome['status']}")
        return read_outputs([str(Path(self.run_dir) / "done.json")])

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        if self._stop is not None:
            self._stop.set()
        if self._worker is not None:
            self._worker.join()  # the loop saves its state at the step boundary, then returns
        print(f"checkpointed {self.run_dir}; requeueing", flush=True)
        return submitit.helpers.DelayedSubmission(
            TrainJob(
                self.recipe,
                self.overrides,
                self.run_dir,
                self.threads,
                self.tasks,
                self.preempt_signal,
            )
        )


def _checkpoint_also_on(name: str, job: TrainJob) -> None:
    """Make signal `name` (SIGTERM by default) save the state too. SLURM sends SIGTERM, then
    SIGKILL after KillWait, when it cancels, requeues (`scontrol requeue`, preemption) or
    preempts a job; submitit alone ignores it and loses every step since the last checkpoint.
    Called in the job's main thread, after submitit installed its SIGUSR2 handler."""
    sig = resources.preempt_signal({"preempt_signal": name})
    usr2 = signal.getsignal(signal.SIGUSR2)
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job
        return
    if sig is None or env.name() != "slurm" or not callable(usr2):
        return

    def handle(signum, frame) -> None:
        if _job_state(env.job_id) == "RUNNING":
            # A bare signal (`scancel --signal=TERM`, a preemption that only signals): save and
            # requeue, exactly as on SIGUSR2.
            usr2(signum, frame)
            return
        # SLURM is ending the job (COMPLETING): cancelled, or requeued by SLURM itself. Save,
        # then leave without a result, as submitit does after a requeue, so that a requeued job
        # runs again and a cancelled one is reported cancelled. Other ranks follow rank 0.
        if env.global_rank == 0:
            job.checkpoint()
            print(f"saved on {signal.Signals(signum).name}; SLURM ends the job", flush=True)
            sys.exit(-1)

    signal.signal(sig, handle)


def _job_state(job_id: str) -> str:
    """The job's state as slurmctld has it now (RUNNING, COMPLETING, ...); "" if unknown."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = [f.partition("=")[2] for f in out.split() if f.startswith("JobState=")]
    return found[0] if found else ""


class CommandJob(submitit.helpers.Checkpointable):
    """Run `gcbench` commands (e.g. the curve, then the final evaluation) one after the other in
    one job and one process, and return the text of their `outputs`; requeued from the start
    if preempted, which is cheap next to training. `section`: its resources in cluster.yaml."""

    def __init__(
        self,
        commands: list[list[str]],
        threads: int = 0,
        outputs: list[str] = (),
        section: str = "evaluate",
    ):
        self.commands, self.threads, self.outputs = commands, threads, list(outputs)
        self.section = section

    @property
    def args(self) -> list[str]:
        return [arg for i, command in enumerate(self.commands) for arg in [*["::"][:i], *command]]

    def __call__(self) -> dict[str, str]:
        from importlib.metadata import entry_points

        import torch

        # The `gcbench` command itself, found through its entry point rather than imported:
        # cli imports this module to submit jobs, and must stay the only way in.
        (script,) = entry_points(group="console_scripts", name="gcbench")
        main = script.load()
        if self.threads:
            torch.set_num_threads(self.threads)
        for command in self.commands:
            main(command, standalone_mode=False)
        return read_outputs(self.outputs)


def read_outputs(paths: list[str]) -> dict[str, str]:
    return {path: Path(path).read_text() for path in paths}


def restore_outputs(outputs: dict[str, str], log=print) -> None:
    """Write back the outputs a finished job returned if they are missing: Snakemake deletes
    the outputs of jobs it reruns after a driver crash, even when the cluster job had finished."""
    for path, text in outputs.items():
        if not Path(path).exists():
            checkpoint.atomic_write(Path(path), lambda f, text=text: f.write(text.encode()))
            log(f"restored {path} from the finished job's result")


def slurm_resources(
    cluster: str, slurm_config: str | Path | None, section: str, overrides: dict | None = None
) -> dict:
    """The cluster.yaml keys in force for one kind of job (resources.py); {} off SLURM. A SLURM
    job without a config file is refused: submitit would ask for 5 minutes and no GPU."""
    if cluster != "slurm":
        return {}
    if slurm_config is None:
        raise LaunchError(
            "--cluster slurm needs --slurm-config FILE: the jobs' time, memory and GPUs "
            "(slurm/cluster.yaml documents every key and its default); without it submitit "
            "would ask for 5 minutes and no GPU"
        )
    try:
        return resources.read(slurm_config, section, overrides)
    except resources.ResourceError as err:
        raise LaunchError(str(err)) from None


def gpus_per_job(
    cluster: str, slurm_config: str | Path | None, overrides: dict | None = None
) -> int:
    """Processes (one per GPU, on every node) a training job runs: nodes x gpus_per_node."""
    if cluster != "slurm":
        return 1
    nodes, per_node = resources.tasks(slurm_resources(cluster, slurm_config, "train", overrides))
    return nodes * per_node


def job_name(label: str, name: str) -> str:
    """The SLURM job name of job `name` (train, evaluate) of the run `label`."""
    return f"gc:{label}:{name}"


def make_executor(
    cluster: str,
    folder: Path,
    slurm_config: str | Path | None,
    name: str,
    tasks: int = 1,
    section: str = "train",
    overrides: dict | None = None,
):
    """A submitit executor with `section`'s resources; `tasks` processes per job, spread evenly
    over its nodes (one per GPU for data-parallel training; 1 for evaluation, which then asks
    for one GPU, so that it never runs once per rank)."""
    if cluster not in CLUSTERS:
        raise LaunchError(f"cluster={cluster!r}: use one of {CLUSTERS}")
    values = slurm_resources(cluster, slurm_config, section, overrides)
    params = resources.submitit_parameters(values)
    max_timeouts = params.pop("slurm_max_num_timeout", 20)
    executor = submitit.AutoExecutor(
        folder=folder, cluster=cluster, slurm_max_num_timeout=max_timeouts
    )
    nodes = int(params.pop("nodes", 1) or 1)
    if cluster == "local":
        params = {"timeout_min": 7 * 24 * 60, "gpus_per_node": 0}  # no local timeout signal
    elif tasks == 1 and params.get("gpus_per_node"):
        params["gpus_per_node"] = 1
    elif "gpus_per_node" in params and not params["gpus_per_node"]:
        del params["gpus_per_node"]  # a CPU job asks for no GPU at all, not for "0 GPUs"
    if tasks % nodes:
        raise LaunchError(f"{tasks} tasks do not spread evenly over nodes={nodes}")
    per_node = tasks // nodes
    if cluster == "slurm":
        params["nodes"] = nodes
    executor.update_parameters(name=name, tasks_per_node=per_node, **params)
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


LOCAL_POLL_S = 0.05  # a local job's own process is polled: cheap


def _job(record: dict):
    folder = Path(record["folder"])
    if record["cluster"] == "slurm":
        return submitit.SlurmJob(folder, record["job_id"])
    return submitit.local.local.LocalJob(folder, record["job_id"])


def _is_live(record: dict) -> bool:
    job = _job(record)
    if record["cluster"] == "local":  # the local job id is its controller's pid
        return local_job_alive(record)
    return not job.done(force_check=True)


def local_job_alive(record: dict) -> bool:
    """Whether a local job's controller process still runs (its job id is that pid)."""
    job = _job(record)
    return _pid_alive(int(record["job_id"])) and not job.paths.result_pickle.exists()


def job_outcome(record: dict) -> str | None:
    """ "success" or "error" from the result file a finished job leaves; None without one."""
    path = _job(record).paths.result_pickle
    if not path.exists():
        return None
    outcome, _ = submitit.core.utils.pickle_load(path)
    return outcome


def _succeeded(job) -> bool:
    """Whether the job finished with a result (not an error, a cancellation or a requeue)."""
    path = job.paths.result_pickle
    if not path.exists():
        return False
    outcome, _ = submitit.core.utils.pickle_load(path)  # ("success", result) or ("error", tb)
    return outcome == "success"


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
    elif record["cluster"] == "local":
        # submitit's own wait looks once a second: up to a second lost per local job, which
        # on the embedded default's 53 short jobs is a visible share of its wall time.
        while not job.done():
            time.sleep(LOCAL_POLL_S)
    try:
        return job.results()[0]  # task 0's (rank 0 of a data-parallel job)
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
    label: str | None = None,
    slurm_overrides: dict | None = None,
):
    """Submit `job_fn` and wait for it to finish; its SLURM name is `job_name(label, name)`,
    `label` defaulting to the run directory. If a job was already submitted for this run
    and name, re-attach to it while it is live, or take its result if it finished with the
    same arguments while no launcher collected it, instead of submitting again. `job_fn.args` says what the job computes."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path = _record_path(run_dir, name)
    if record_path.exists():
        record = checkpoint.read_json(record_path)
        job, same = _job(record), record.get("args") == job_fn.args
        if _is_live(record):
            if not same:
                raise LaunchError(
                    f"{record['cluster']} job {record['job_id']} ({name}) for {run_dir} is still "
                    f"running with other arguments ({record.get('args')}); wait for it to "
                    f"finish or cancel it (scancel {record['job_id']}), then launch again"
                )
            log(f"re-attaching to {record['cluster']} job {record['job_id']} ({name}, {run_dir})")
            return _collect(record, record_path, _wait(record, job, poll_s))
        if same and not record.get("collected") and _succeeded(job):
            # It finished while no launcher was waiting (the driver died): use its result.
            log(
                f"{record['cluster']} job {record['job_id']} ({name}) already finished; using its result"
            )
            return _collect(record, record_path, job.results()[0])
    tasks, section = getattr(job_fn, "tasks", 1), job_fn.section
    folder = run_dir / "submitit" / name
    slurm_name = job_name(label or str(run_dir), name)
    executor = make_executor(
        cluster, folder, slurm_config, slurm_name, tasks, section, slurm_overrides
    )
    job = executor.submit(job_fn)
    record = {
        "cluster": cluster,
        "job_id": job.job_id,
        "name": name,
        "job_name": slurm_name,
        "args": job_fn.args,
        "folder": str(job.paths.folder),
        "submitted": time.time(),
    }
    checkpoint.write_json(record, record_path)
    history = run_dir / "jobs.jsonl"
    checkpoint.append_jsonl(record, history)
    _link_logs(run_dir, name, job)
    log(f"submitted {cluster} job {job.job_id} ({name}, {run_dir}); logs in {run_dir / 'logs'}")
    return _collect(record, record_path, _wait(record, job, poll_s))


def _collect(record: dict, record_path: Path, result):
    """Mark the job's result as received, so that a later launch (e.g. Snakemake's
    --forcerun) submits a new job rather than reusing this one."""
    checkpoint.write_json({**record, "collected": True}, record_path)
    return result
