import shutil
from pathlib import Path

import pytest
import torch
from gcbench import checkpoint
from gcbench.recipes import resolve

ROOT = Path(__file__).parent.parent


@pytest.fixture
def tiny_digits():
    """A digits8 config small enough for many CPU steps in a test. It keeps the UNet (the
    paper's network family; digits8's default is an MLP) so that the tests exercise it."""

    def make(variant: str = "ic", *overrides: str):
        return resolve(
            f"digits8-{variant}",
            [
                "network=unet",
                "model_channels=8",
                "batch_size=16",
                "total_steps=40",
                "log_every=10",
                "snapshot_every=20",
                "checkpoint_every=1000",
                "device=cpu",
                "keep_state=true",  # tests compare final resume states
                *overrides,
            ],
        )

    return make


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow, so that runs and .snakemake/ land in a temporary folder."""
    for name in ("Snakefile", "workflow", "slurm"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


@pytest.fixture
def uninterrupted():
    """Train a run in this process, one thread, without interruption; its final state (the
    reference that preempted, resumed or data-parallel runs are compared with)."""
    from gcbench.launch import TrainJob

    def run(recipe: str, overrides: list[str], run_dir: Path) -> dict:
        threads = torch.get_num_threads()
        try:
            TrainJob(recipe, [*overrides, "keep_state=true"], str(run_dir), threads=1)()
        finally:
            torch.set_num_threads(threads)
        return checkpoint.load(Path(run_dir) / checkpoint.STATE)

    return run
