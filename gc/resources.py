"""SLURM resources per rule and per experiment, read from slurm/cluster.yaml.

The file has shared keys at the top (they apply to every job) and one section per kind of job,
whose keys replace the shared ones for that kind:

    partition: gpu          # every job
    train: {gpus_per_node: 1, mem_gb: 64, timeout_min: 1440}
    evaluate: {gpus_per_node: 1, mem_gb: 32, timeout_min: 360}

A study config may override any key for one experiment (`experiments.<name>.slurm.<section>`),
which reaches `gcbench launch` as `--slurm-set KEY=VALUE`. The later layer wins: shared <
section < experiment. A SLURM job is never submitted without a time limit: submitit's own
default is 5 minutes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import yaml

SECTIONS = ("train", "evaluate", "prepare", "report")
# cluster.yaml key -> submitit AutoExecutor parameter (None: read by gcbench, not submitit).
KEYS = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "nodes": "nodes",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "mem_gb": "mem_gb",
    "timeout_min": "timeout_min",
    "signal_delay_s": "slurm_signal_delay_s",
    "max_num_timeout": "slurm_max_num_timeout",
    "additional_parameters": "slurm_additional_parameters",
    "setup": "slurm_setup",
    "preempt_signal": None,
}


class ResourceError(ValueError):
    pass


def _check_keys(values: dict, where: str) -> None:
    unknown = set(values) - set(KEYS)
    if unknown:
        raise ResourceError(
            f"{where}: unknown keys {sorted(unknown)}; valid keys: {', '.join(KEYS)}"
        )


def read(path: str | Path, section: str, overrides: dict | None = None) -> dict:
    """The cluster.yaml keys in force for one kind of job: shared < section < overrides."""
    if section not in SECTIONS:
        raise ResourceError(f"section {section!r}: use one of {SECTIONS}")
    values = yaml.safe_load(Path(path).read_text()) or {}
    sections = {k: values.pop(k) or {} for k in SECTIONS if k in values}
    for name, part in sections.items():
        if not isinstance(part, dict):
            raise ResourceError(f"{path}: section {name} must map keys to values, got {part!r}")
    _check_keys(values, str(path))
    for name, part in sections.items():
        _check_keys(part, f"{path}: section {name}")
    overrides = dict(overrides or {})
    _check_keys(overrides, "--slurm-set")
    merged = {**values, **sections.get(section, {}), **overrides}
    merged = {k: v for k, v in merged.items() if v is not None}
    if "timeout_min" not in merged:
        raise ResourceError(
            f"{path} gives no timeout_min for {section} jobs (neither at the top nor in its "
            f"`{section}:` section); submitit's default would be 5 minutes. Set one."
        )
    preempt_signal(merged)  # an unknown signal fails before submission
    return merged


def submitit_parameters(values: dict) -> dict:
    """The submitit executor parameters of `read`'s keys."""
    return {KEYS[k]: v for k, v in values.items() if KEYS[k] is not None}


def preempt_signal(values: dict) -> signal.Signals | None:
    """The signal that, besides submitit's SIGUSR2, checkpoints and requeues a training job:
    SIGTERM by default (what SLURM sends on preemption, `scontrol requeue` and cancellation),
    none if set to `none`."""
    name = str(values.get("preempt_signal", "TERM")).upper()
    if name == "NONE":
        return None
    try:
        return signal.Signals["SIG" + name.removeprefix("SIG")]
    except KeyError:
        message = f"preempt_signal={name}: give a signal name (TERM, INT) or none"
        raise ResourceError(message) from None


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict:
    """`--slurm-set KEY=VALUE` pairs; VALUE is YAML (60, gpu, {constraint: a100})."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ResourceError(f"--slurm-set {pair}: expected KEY=VALUE, e.g. timeout_min=60")
        out[key] = yaml.safe_load(value)
    _check_keys(out, "--slurm-set")
    return out


def tasks(values: dict) -> tuple[int, int]:
    """(nodes, tasks per node) of a training job: one task per GPU on every node."""
    return int(values.get("nodes") or 1), int(values.get("gpus_per_node") or 1)
