"""Pictures of a run while it trains: at every snapshot, 1-step samples of the EMA network drawn
from one fixed noise, written to RUN_DIR/samples/step-NNNNNNN.png.

The noise is keyed by GRID_SEED and the image index alone (sample.image_noise), never by the
run's seed or variant, so image k of every snapshot, every seed and every variant of an
experiment starts from the same draw: a reader can watch a run improve and compare variants
image by image. Images are tiled in a square grid; 2-D toy samples are drawn as a scatter over
the target distribution.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .recipes import TrainConfig

if TYPE_CHECKING:
    from torch import nn

GRID_SEED = 2**31 - 1  # apart from the evaluation seeds (0, 1, ...): no shared draws
SAMPLES = "samples"
PAD = 2  # pixels between images, in the background grey


def grid_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SAMPLES / f"step-{step:07d}.png"


def final_grid(run_dir: str | Path) -> Path | None:
    """The picture of the run's latest snapshot; None if it has none."""
    found = sorted((Path(run_dir) / SAMPLES).glob("step-*.png"))
    return found[-1] if found else None


def tile(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows*(H+PAD)+PAD, cols*(W+PAD)+PAD, C) image, row-major."""
    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + PAD) + PAD, cols * (w + PAD) + PAD, c), 128, dtype=np.uint8)
    for k, image in enumerate(images):
        r, q = divmod(k, cols)
        top, left = PAD + r * (h + PAD), PAD + q * (w + PAD)
        out[top : top + h, left : left + w] = image
    return out


def write_grid(net: nn.Module, c: TrainConfig, step: int, run_dir: str | Path, device) -> Path:
    """Sample `c.sample_grid` images (points for the toy) from `net` (the EMA network, in eval
    mode) and write the snapshot's picture."""
    # Here, not at the top: the report reads pictures without starting torch.
    from .data import DATASETS
    from .sample import sample, to_uint8

    shape = DATASETS[c.dataset].shape
    x = sample(
        net,
        c.sample_grid,
        shape,
        seed=GRID_SEED,
        sigma_min=c.sigma_min,
        sigma_max=c.sigma_max,
        batch_size=max(c.sample_grid, 1),
        device=device,
    )
    path = grid_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(shape) == 3:
        from PIL import Image

        grid = tile(to_uint8(x))
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    else:
        _scatter(x.numpy(), c, step, path)
    return path


def _scatter(points: np.ndarray, c: TrainConfig, step: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a compute node
    import matplotlib.pyplot as plt

    from .data import toy2d

    target = toy2d(2_000, seed=GRID_SEED).numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(*target.T, s=2, c="0.75", label="target")
    ax.scatter(*points.T, s=2, c="C0", label=f"1-step samples (EMA, n={len(points)})")
    ax.set(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", title=f"{c.recipe}, step {step}")
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    # Fixed metadata: the same samples give the same bytes.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
