"""What training and evaluation both need from the machine: the device, a run's config and the
float precision. Kept apart so that evaluation does not import the training loop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import checkpoint
from .recipes import ConfigError, TrainConfig, from_dict


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is visible; use device=cpu")
    return torch.device(name)


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
    return from_dict(checkpoint.read_json(path))


def set_tf32(enabled: bool) -> None:
    """TF32 for matmuls and cuDNN convolutions. cuDNN's default is on (Ampere and later), so
    leaving it alone is not fp32; see DiT's note on why the setting must be explicit."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def precision() -> dict:
    """The float settings in force, as recorded in every eval JSON."""
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


@contextmanager
def fp32() -> Iterator[dict]:
    """Full fp32 (no TF32) inside the block, the caller's settings restored after; yields the
    settings in force, to record."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    set_tf32(False)
    torch.set_float32_matmul_precision("highest")
    try:
        yield precision()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
