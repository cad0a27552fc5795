import pytest
import torch
from gcbench.recipes import resolve


@pytest.fixture
def tiny_digits():
    """A digits8 config small enough for many CPU steps in a test."""

    def make(variant: str = "ic", *overrides: str):
        return resolve(
            f"digits8-{variant}",
            [
                "model_channels=8",
                "batch_size=16",
                "total_steps=40",
                "log_every=10",
                "snapshot_every=20",
                "checkpoint_every=1000",
                "device=cpu",
                *overrides,
            ],
        )

    return make


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
