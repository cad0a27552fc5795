"""Training data: what each dataset looks like and how batches are drawn.

- `digits8` and `toy2d` are generated in memory (sklearn's 8x8 digits; the paper's 2-D toy).
- The paper's datasets live on disk in one documented format: a NumPy `.npy` file holding a
  uint8 array of shape (N, H, W, C), values 0-255, at `<data_dir>/<dataset>/train.npy`. It is
  memory-mapped, so only the rows of each batch are read.

The data order is a pure function of (seed, step): resuming at step k draws exactly the batches
an uninterrupted run would have, with no loader state to save.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .catalog import DATASETS, DatasetInfo  # noqa: F401  (re-exported)

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


class MissingDatasetError(FileNotFoundError):
    pass


def digits_with_labels(split: str = "train") -> tuple[Tensor, Tensor]:
    """sklearn's 8x8 digits scaled to [-1, 1], shape (N, 1, 8, 8), and their labels; a fixed
    80/20 train/test split."""
    raw, target = _sklearn_digits()
    images = torch.from_numpy(raw).float() / 16 * 2 - 1
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test = int(len(images) * DIGITS_TEST_FRACTION)
    idx = {"train": order[n_test:], "test": order[:n_test]}[split]
    return images[idx].unsqueeze(1), torch.from_numpy(target)[idx]


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits, (N, 8, 8) float64 images and int labels, read from the file sklearn
    ships, exactly as `load_digits` reads it, but without importing sklearn: that import is
    about 1.5 s of every digits job's start-up."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.exists():  # another layout: let sklearn find its file
        from sklearn.datasets import load_digits

        raw = load_digits()
        return raw.images, raw.target
    with gzip.open(path, mode="rt", encoding="utf-8") as file:
        data = np.loadtxt(file, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def digits(split: str = "train") -> Tensor:
    return digits_with_labels(split)[0]


def toy2d(n: int = 20_000, seed: int = 0) -> Tensor:
    """The paper's toy target: two Gaussians at (0, +-0.5) with std 0.01, equal weights."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.tensor([[0.0, 0.5], [0.0, -0.5]])[torch.randint(0, 2, (n,), generator=gen)]
    return centre + 0.01 * torch.randn(n, 2, generator=gen)


def dataset_path(name: str, data_dir: str | Path) -> Path:
    return Path(data_dir) / name / "train.npy"


def load_uint8_array(path: Path, name: str) -> np.ndarray:
    if not path.exists():
        raise MissingDatasetError(
            f"dataset '{name}' not found: expected {path}, a .npy file holding a uint8 array "
            f"of shape (N, H, W, C). Prepare it with `gcbench data prepare {name}` "
            f"(see its --help for the --source it needs), or point `--set data_dir=...` at the "
            f"folder that holds {name}/train.npy."
        )
    array = np.load(path, mmap_mode="r")
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ValueError(
            f"{path} holds a {array.dtype} array of shape {array.shape}; expected uint8 "
            f"(N, H, W, C). Re-prepare the dataset."
        )
    return array


class TrainingData:
    """A dataset plus the deterministic batch order used for training."""

    def __init__(self, name: str, data_dir: str | Path = "data"):
        self.name = name
        info = DATASETS[name]
        if name == "digits8":
            self._memory, self._disk = digits("train"), None
        elif name == "toy2d":
            self._memory, self._disk = toy2d(), None
        else:
            self._memory, self._disk = None, load_uint8_array(dataset_path(name, data_dir), name)
            found = tuple(self._disk.shape[3:] + self._disk.shape[1:3])
            if found != info.shape:
                raise ValueError(
                    f"{dataset_path(name, data_dir)} has samples of shape (C, H, W)={found}; "
                    f"{name} needs {info.shape}"
                )
        self.shape = info.shape

    def __len__(self) -> int:
        return len(self._memory if self._memory is not None else self._disk)

    def indices(self, step: int, batch_size: int, seed: int) -> Tensor:
        """Sample indices of batch `step`: consecutive slices of one permutation per epoch."""
        n = len(self)
        positions = torch.arange(step * batch_size, (step + 1) * batch_size)
        out = torch.empty(batch_size, dtype=torch.long)
        for epoch in positions.div(n, rounding_mode="floor").unique().tolist():
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen)
            hit = positions // n == epoch
            out[hit] = perm[positions[hit] % n]
        return out

    def batch(
        self,
        step: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        rows: slice = slice(None),
    ) -> Tensor:
        """Batch `step` (or its `rows`: one rank's share), straight from the array to `device`:
        no loader workers, since a batch is one indexed read of the memory-mapped uint8 array."""
        idx = self.indices(step, batch_size, seed)[rows]
        if self._memory is not None:
            return self._memory[idx].to(device)
        # Sorted, de-duplicated reads of the memmap, then back into batch order.
        unique, inverse = np.unique(idx.numpy(), return_inverse=True)
        images = torch.from_numpy(self._disk[unique]).to(device, non_blocking=True)
        # uint8 crosses to the device (4x fewer bytes than float), then converts there.
        return (
            images[torch.as_tensor(inverse, device=device)].permute(0, 3, 1, 2).float() / 127.5 - 1
        )
