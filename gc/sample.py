"""Few-step sampling from a consistency function.

1-step: x = f(sigma_max z, sigma_max).
2-step (iCT/ECT convention): x' = x + sqrt(sigma_mid^2 - sigma_min^2) z', x = f(x', sigma_mid).
Image j's noise comes from its own stream, keyed by (seed, j) through numpy's SeedSequence, so
samples do not depend on the batch size, the device or how many devices share the work, and two
evaluation seeds never share a draw (seed + j would: seed 1 would reuse seed 0's images 1..n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import checkpoint
from .networks import ConsistencyFunction
from .recipes import TrainConfig, build_network, from_dict

SIGMA_MID = 0.821


def image_noise(
    seed: int, start: int, count: int, shape: tuple[int, ...], device, draws: int = 2
) -> Tensor:
    """Noise for images start..start+count-1: `draws` standard normal tensors per image (z, then
    z' for the second step), drawn on the CPU from the image's stream SeedSequence(seed,
    spawn_key=(j,)) and moved to `device` in one transfer per batch. The first draw does not
    depend on `draws`, so 1- and 2-step samples share z."""
    size = draws * math.prod(shape)
    out = np.empty((count, size), dtype=np.float32)
    for k in range(count):
        # Philox: a counter-based generator, cheap to key once per image.
        stream = np.random.SeedSequence(seed, spawn_key=(start + k,))
        np.random.Generator(np.random.Philox(stream)).standard_normal(
            size, dtype=np.float32, out=out[k]
        )
    return torch.from_numpy(out).view(count, draws, *shape).to(device)


@torch.no_grad()
def sample(
    f: Callable[[Tensor, Tensor], Tensor],
    n: int,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    steps: int = 1,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    sigma_mid: float = SIGMA_MID,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    progress: Callable | None = None,
) -> Tensor:
    """n samples from the consistency function f, unclipped, on the CPU."""
    if steps not in (1, 2):
        raise ValueError(f"steps={steps}: consistency sampling here is 1- or 2-step")
    chunks = []
    starts = range(0, n, batch_size)
    for start in progress(starts) if progress else starts:
        count = min(batch_size, n - start)
        noise = image_noise(seed, start, count, shape, device, draws=steps)
        sigma = torch.full((count,), sigma_max, device=device)
        x = f(sigma_max * noise[:, 0], sigma)
        if steps == 2:
            x = x + math.sqrt(sigma_mid**2 - sigma_min**2) * noise[:, 1]
            x = f(x, torch.full((count,), sigma_mid, device=device))
        chunks.append(x.float().cpu())
    return torch.cat(chunks)


def renoise_floor(config: TrainConfig) -> float:
    """The `sigma_min` of the second step's noise std sqrt(mid^2 - sigma_min^2): iCT's
    sigma_min; 0 for ECT, whose std is mid itself."""
    return 0.0 if config.objective == "ect" else config.sigma_min


def to_uint8(images: Tensor) -> np.ndarray:
    """Clip to [-1, 1] and quantise: (N, C, H, W) floats -> (N, H, W, C) uint8.
    (The official code min-max normalises each batch instead; we clip, as EDM and iCT do.)"""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def load_network(
    run_dir: str | Path, snapshot: str | int = "final", weights: str = "ema", device="cpu"
) -> tuple[ConsistencyFunction, TrainConfig, int]:
    """The consistency function of a run's snapshot (EMA or online weights), in eval mode."""
    if weights not in ("ema", "net", "online"):
        raise ValueError(f"weights={weights!r}: use ema or online")
    snap = checkpoint.load(checkpoint.find_snapshot(Path(run_dir), snapshot))
    config = from_dict(snap["config"])
    net = build_network(config)
    net.load_state_dict(snap["ema" if weights == "ema" else "net"])
    return net.to(device).eval(), config, snap["step"]
