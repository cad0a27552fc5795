"""Gradient accumulation (gc/microbatch.py): one step in micro-batches is one step on the
whole batch, for every objective and coupling, in one process and under DDP."""

import pytest
import torch
from gcbench import checkpoint
from gcbench.launch import TrainJob, make_executor
from gcbench.microbatch import row_chunks

# RAdam's first steps are unrectified: the update is lr times the (bias-corrected) gradient, so
# a parameter difference measures the gradient difference. Lion and Adam's first update is the
# sign of the gradient, which float rounding of a near-zero entry could flip. Dropout 0:
# masks are drawn per pass, so a split batch would drop other units (microbatch.py).
ONE_STEP = [
    "total_steps=1",
    "batch_size=16",
    "optimizer=radam",
    "lr=1e-2",
    "dropout=0",
    "device=cpu",
    "keep_state=true",
    "log_every=1",
    "snapshot_every=1000",
]
# batch_per_gpu=5 splits 16 rows into 5 + 5 + 5 + 1: a mean per micro-batch, unweighted by
# its size, would give the last row the weight of five.
SPLIT = "batch_per_gpu=5"
CASES = {
    "ic": ("digits8-ic", ["model_channels=8"]),
    "ot": ("digits8-ot", ["model_channels=8"]),
    "gc": ("digits8-gc", ["model_channels=8", "mu=0.5", "endpoint=online"]),
    "ect": ("digits8_ect_long-gc", ["model_channels=8", "init=random", "ect_stage_steps=5"]),
}


def _close(a: dict, b: dict, rtol: float = 1e-6) -> None:
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=1e-7 * b[k].abs().max().item())


def test_row_chunks_cover_the_batch_with_a_smaller_last_one():
    assert row_chunks(16, 5) == [slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 16)]
    assert row_chunks(16, 0) == [slice(0, 16)] == row_chunks(16, 16)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_accumulated_step_equals_one_whole_batch_step(tmp_path, uninterrupted, case):
    recipe, extra = CASES[case]
    whole = uninterrupted(recipe, [*ONE_STEP, *extra], tmp_path / "whole")
    split = uninterrupted(recipe, [*ONE_STEP, *extra, SPLIT], tmp_path / "split")
    init = uninterrupted(recipe, [*ONE_STEP, *extra, "lr=1e-30"], tmp_path / "init")
    assert whole["step"] == split["step"] == 1
    _close(split["net"], whole["net"])
    # The step moved the weights far beyond the tolerance: the comparison can fail.
    moved = max((whole["net"][k] - init["net"][k]).abs().max().item() for k in whole["net"])
    assert moved > 1e-4
    assert split["rng"]["gen"].equal(whole["rng"]["gen"])  # the same draws, made once
    loss_whole = checkpoint.read_metrics(tmp_path / "whole")[0]["loss"]
    loss_split = checkpoint.read_metrics(tmp_path / "split")[0]["loss"]
    assert loss_split == pytest.approx(loss_whole, rel=1e-6)


@pytest.mark.slow
def test_accumulation_under_ddp_equals_one_whole_batch_step(tmp_path, uninterrupted):
    recipe, extra = CASES["gc"]
    overrides = [*ONE_STEP, *extra]
    # Two ranks of 8 rows, each in micro-batches of 3 + 3 + 2; no_sync until the last.
    job = make_executor("local", tmp_path / "jobs", None, "train", tasks=2).submit(
        TrainJob(recipe, [*overrides, "batch_per_gpu=3"], str(tmp_path / "ddp"), 1, tasks=2)
    )
    job.results()
    one = uninterrupted(recipe, overrides, tmp_path / "one")
    two = checkpoint.load(tmp_path / "ddp" / "state.pt")
    assert two["step"] == one["step"] == 1 and len(two["rng"]["ranks"]) == 2
    _close(two["net"], one["net"])
