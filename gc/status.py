"""Where a study stands: one row per run, read from its run directory and, where there is one,
the scheduler (squeue for live jobs, sacct for finished ones).

It never waits on a job: the scheduler is asked once, with a short timeout, and a missing or
failing squeue/sacct only costs the SLURM columns. States:

    not started   no job was submitted and nothing was trained
    queued        the latest job waits in the queue
    running       the latest job runs (training, or evaluation once training is done)
    preempted, requeued   the job ran, was stopped (preemption or time limit) and waits again
    done          training finished and, if an evaluation job was submitted, it finished too
    failed        the latest job ended with an error, was cancelled or timed out for good
    unknown       a SLURM job with no scheduler answer and no result yet
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from . import checkpoint, study
from .launch import job_outcome, local_job_alive
from .progress import eta_seconds, format_duration, format_metric, last_curve_metric

# sacct/squeue states -> ours; states missing here (e.g. SUSPENDED) are shown as they are.
_SLURM = {
    "PENDING": "queued",
    "CONFIGURING": "queued",
    "REQUEUED": "preempted, requeued",
    "REQUEUE_HOLD": "preempted, requeued",
    "REQUEUE_FED": "preempted, requeued",
    "RUNNING": "running",
    "COMPLETING": "running",
    "COMPLETED": "done",
    "FAILED": "failed",
    "CANCELLED": "failed",
    "TIMEOUT": "failed",
    "OUT_OF_MEMORY": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "DEADLINE": "failed",
    "PREEMPTED": "preempted, requeued",
}
SCHEDULER_TIMEOUT_S = 10


def _ask(command: list[str]) -> list[list[str]]:
    """Rows of `|`-separated fields, or none if the command is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        return []
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode:
        return []
    return [line.split("|") for line in done.stdout.splitlines() if line.strip()]


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """Job id -> SLURM state, from squeue (live jobs) then sacct (the others); jobs neither
    knows are left out."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    states = {j: s for j, s, *_ in _ask(["squeue", "-h", "-o", "%i|%T", "-j", ",".join(ids)])}
    rest = [j for j in ids if j not in states]
    if rest:
        sacct = ["sacct", "-X", "-n", "-P", "-o", "jobid,state", "-j", ",".join(rest)]
        # "CANCELLED by 0" -> CANCELLED
        states |= {j: s.split()[0] for j, s, *_ in _ask(sacct) if j in rest and s}
    return states


def _latest_job(run_dir: Path) -> dict | None:
    records = [checkpoint.read_json(p) for p in sorted(run_dir.glob("job-*.json"))]
    return max(records, key=lambda r: r.get("submitted", 0)) if records else None


def _state(run_dir: Path, job: dict | None, slurm_state: str | None, ran_in_job: bool) -> str:
    trained = (run_dir / "done.json").exists()
    if job is None:
        return "done" if trained else "not started"
    outcome = job_outcome(job)
    if outcome is not None:  # the job's own result: the scheduler may still say RUNNING
        return {"success": "done", "error": "failed"}[outcome]
    if job["cluster"] == "local":
        return "running" if local_job_alive(job) else "failed"  # died without a result
    if slurm_state is not None:
        state = _SLURM.get(slurm_state, slurm_state.lower())
        # A requeued job is PENDING again under the same id: it ran before.
        return "preempted, requeued" if state == "queued" and ran_in_job else state
    return "unknown"  # a SLURM job without a result that no scheduler answers for


def run_status(run_dir: str | Path, total_steps: int, slurm: dict[str, str]) -> dict:
    """One run's row: state, job, progress and last numbers."""
    run_dir = Path(run_dir)
    job = _latest_job(run_dir)
    slurm_state = slurm.get(job["job_id"]) if job and job["cluster"] == "slurm" else None
    provenance = checkpoint.read_jsonl(run_dir / "provenance.jsonl")
    ran_in_job = bool(job) and any(p.get("slurm_job_id") == job["job_id"] for p in provenance)
    state = _state(run_dir, job, slurm_state, ran_in_job)
    rows = checkpoint.read_metrics(run_dir) if run_dir.exists() else []
    last = rows[-1] if rows else {}
    step = last.get("step", 0)
    rate = 1.0 / last["step_time"] if last.get("step_time") else None
    training = state not in ("done", "failed") and step < total_steps
    return dict(
        run=str(run_dir),
        state=state,
        stage=job["name"] if job else None,
        job_id=job["job_id"] if job else None,
        job_name=job.get("job_name") if job else None,
        slurm_state=slurm_state,
        step=step,
        total_steps=total_steps,
        steps_per_s=rate,
        eta_s=eta_seconds(step, total_steps, rate) if training else None,
        loss=last.get("loss"),
        curve_metric=last_curve_metric(run_dir) if run_dir.exists() else None,
        # Each restart of the training (after preemption, a time limit or a resubmission).
        requeues=sum(p.get("event") == "resume" for p in provenance),
    )


def study_status(config: dict, root: str | Path = ".") -> list[dict]:
    """A row per run of the study, its run directories under `root` (where the study runs)."""
    runs = study.runs(config)
    dirs = [Path(root) / run.path for run in runs]
    jobs = [_latest_job(d) for d in dirs if d.exists()]
    slurm = slurm_states(j["job_id"] for j in jobs if j and j["cluster"] == "slurm")
    out = []
    for run, run_dir in zip(runs, dirs, strict=True):
        row = run_status(run_dir, run.config().total_steps, slurm)
        out.append(dict(experiment=run.experiment, variant=run.variant, seed=run.seed, **row))
    return out


def render(rows: list[dict]) -> str:
    from tabulate import tabulate

    table = [
        [
            f"{r['experiment']}/{r['variant']}/s{r['seed']}",
            r["state"],
            r["stage"] or "-",
            r["job_id"] or "-",
            r["slurm_state"] or "-",
            f"{r['step']}/{r['total_steps']}",
            f"{r['steps_per_s']:.3g}" if r["steps_per_s"] else "-",
            format_duration(r["eta_s"]),
            f"{r['loss']:.4g}" if r["loss"] is not None else "-",
            format_metric(r["curve_metric"]),
            r["requeues"],
        ]
        for r in rows
    ]
    head = ["run", "state", "job", "job id", "SLURM", "step", "steps/s", "ETA", "loss"]
    head += ["last curve metric", "requeues"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    return tabulate(table, head, tablefmt="github", disable_numparse=True) + f"\n\n{summary}"
