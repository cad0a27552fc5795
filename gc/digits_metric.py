"""The embedded digits benchmark's metric: distances in the feature space of a small CNN.

Inception features mean little on 8x8 grey digits and cost too much on a CPU, so the digits
benchmark trains a small classifier deterministically on the digits train split and measures
distances between its penultimate (128-d) features:
- "FD-digits", the Frechet distance with clean-fid's formula on features computed in memory
  (`fd_digits`); the same number as clean-fid's folder pipeline with a `custom_feat_extractor`
  (`fd_digits_via_folders`, which a test checks it against), without writing PNG files;
- "KID-digits", through torch-fidelity's `register_feature_extractor`.
These are never called FID.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import checkpoint
from .data import digits_with_labels
from .features import UInt8Images
from .metrics import frechet_distance, gaussian_moments, kid_result

CLASSIFIER_VERSION = 1
TORCH_FIDELITY_NAME = "gcbench-digits"
# torch-fidelity's default is 100 subsets of 1000; with the default's 1000 samples every subset
# holds all of them, so 20 subsets of the reference estimate the mean as well at a fifth of the
# cost (about 6 s per call on one CPU core with 100).
KID_SUBSETS = 20


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _from_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, 8, 8) values in [0, 255] (grey or RGB) -> (N, 1, 8, 8) in [-1, 1]."""
    return images.float().mean(1, keepdim=True) / 127.5 - 1


def train_classifier(seed: int = 0, epochs: int = 30) -> DigitsCNN:
    """Deterministic: fixed seed, fixed batch order, CPU, full precision."""
    x, y = digits_with_labels("train")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitsCNN, split: str = "test") -> float:
    x, y = digits_with_labels(split)
    return (model(x).argmax(1) == y).float().mean().item()


def classifier_path(cache: Path) -> Path:
    return Path(cache) / f"digits-classifier-v{CLASSIFIER_VERSION}.pt"


def build_classifier(path: Path) -> Path:
    """Train the classifier and write it atomically to `path` (what the workflow's
    `digits_classifier` rule runs once per study, so that every evaluation uses one network:
    oneDNN kernels may differ between CPUs and thread counts)."""
    trained = train_classifier()
    checkpoint.save({"net": trained.state_dict(), "accuracy": accuracy(trained)}, Path(path))
    return Path(path)


def classifier(path: Path) -> tuple[DigitsCNN, Path, float]:
    """The classifier at `path` (a weights file, or a cache folder, where it is trained on
    first use), its weights file and its held-out accuracy."""
    path = Path(path)
    if path.suffix != ".pt":
        path = classifier_path(path)
        if not path.exists():
            build_classifier(path)
    state = checkpoint.load(path)
    model = DigitsCNN()
    model.load_state_dict(state["net"])
    return model.eval(), path, state["accuracy"]


class CleanFidDigitsFeatures:
    """clean-fid's `custom_feat_extractor` interface: float (N, 3, H, W) in [0, 255] -> (N, D)."""

    def __init__(self, model: DigitsCNN, device):
        self.model, self.device = model.to(device), device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.features(_from_uint8(images.to(self.device)))


def write_png_folder(images: np.ndarray, folder: Path) -> Path:
    """uint8 (N, H, W, 1|3) -> numbered PNG files, the input clean-fid reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            folder / f"{k:06d}.png"
        )
    return folder


def reference_images(split: str = "train") -> np.ndarray:
    x, _ = digits_with_labels(split)
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def features(images: np.ndarray, model: DigitsCNN, device) -> np.ndarray:
    """uint8 (N, 8, 8, C) -> the classifier's (N, 128) penultimate features, float64."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    extractor = CleanFidDigitsFeatures(model, device)
    return torch.cat([extractor(b) for b in x.split(256)]).cpu().double().numpy()


def fd_digits(
    samples: np.ndarray,
    reference: np.ndarray,
    model: DigitsCNN,
    device,
    reference_moments: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Frechet distance in the classifier's feature space (clean-fid's formula). A curve scores
    every snapshot against one reference: its `reference_moments`, when given, are those of
    `reference`, computed once."""
    if reference_moments is None:
        reference_moments = gaussian_moments(features(reference, model, device))
    return frechet_distance(*gaussian_moments(features(samples, model, device)), *reference_moments)


def fd_digits_via_folders(
    samples: np.ndarray, reference: np.ndarray, model: DigitsCNN, device
) -> float:
    """The same distance through clean-fid's whole pipeline (PNG folders, its data loader and a
    `custom_feat_extractor`): slower, kept as the reference `fd_digits` is tested against."""
    from cleanfid import fid

    with tempfile.TemporaryDirectory() as tmp:
        a = write_png_folder(samples, Path(tmp) / "samples")
        b = write_png_folder(reference, Path(tmp) / "reference")
        return float(
            fid.compute_fid(
                str(a),
                str(b),
                mode="clean",
                custom_feat_extractor=CleanFidDigitsFeatures(model, device),
                custom_fn_resize=lambda image: image,
                num_workers=0,
                batch_size=256,
                device=torch.device(device),
                verbose=False,
            )
        )


# ---- torch-fidelity ---------------------------------------------------------------------------


def _torch_fidelity_extractor():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class DigitsFeatureExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.model = DigitsCNN()
            self.model.load_state_dict(checkpoint.load(feature_extractor_weights_path)["net"])

        @staticmethod
        def get_provided_features_list():
            return ("penultimate",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "penultimate"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

        def forward(self, x):
            return (self.model.features(_from_uint8(x)),)

    return DigitsFeatureExtractor


def kid_digits(samples: np.ndarray, reference: np.ndarray, weights: Path, device) -> dict:
    """KID in the classifier's feature space, computed by torch-fidelity."""
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if TORCH_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(TORCH_FIDELITY_NAME, _torch_fidelity_extractor())
    out = torch_fidelity.calculate_metrics(
        input1=UInt8Images(samples),
        input2=UInt8Images(reference),
        kid=True,
        feature_extractor=TORCH_FIDELITY_NAME,
        feature_extractor_weights_path=str(weights),
        kid_subset_size=min(1000, len(samples), len(reference)),
        kid_subsets=KID_SUBSETS,
        cuda=torch.device(device).type == "cuda",
        verbose=False,
        cache=False,
        batch_size=256,
        save_cpu_ram=True,
    )
    return kid_result(out)
