"""What exists, by name: datasets and their shapes, couplings, losses, FID modes.

Plain data without torch, so that config validation and the job launcher (`gcbench launch`,
which only submits and waits) start in a fraction of a second instead of importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    shape: tuple[int, ...]  # one sample, channels first
    source: str  # "memory" or "disk"


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo((3, 32, 32), "disk"),
    "imagenet32": DatasetInfo((3, 32, 32), "disk"),
    "celeba64": DatasetInfo((3, 64, 64), "disk"),
    "lsun_church64": DatasetInfo((3, 64, 64), "disk"),
    "ffhq64": DatasetInfo((3, 64, 64), "disk"),  # Table 2 (ECT) only
    "digits8": DatasetInfo((1, 8, 8), "memory"),
    "toy2d": DatasetInfo((2,), "memory"),
}
PAPER_DATASETS = tuple(name for name, info in DATASETS.items() if info.source == "disk")

COUPLINGS = ("ic", "ot", "gc", "gc_ot")  # couplings.COUPLINGS implements each
LOSSES = ("pseudo_huber", "l2")  # losses.LOSSES implements each
FID_MODES = ("clean", "legacy_tensorflow")  # clean-fid's modes
