"""The time-based resume state (checkpoint_minutes): written between the step-based ones, so
that a hard kill loses minutes, not checkpoint_every steps. The SLURM side (SIGTERM, requeue,
SIGKILL) is tested on the real cluster in test_slurm.py."""

from pathlib import Path

import pytest
from gcbench import checkpoint
from gcbench.recipes import resolve
from gcbench.train import train

TINY = ["total_steps=40", "batch_size=16", "mlp_hidden=32", "device=cpu", "log_every=5"]
TINY += ["checkpoint_every=100000", "snapshot_every=100000"]


def _state_step_seen_at(run_dir: Path, minutes: float, at: int) -> int | None:
    """Train, and return the resume state's step as it is on disk when step `at` begins."""
    seen = {}

    def look(step: int) -> bool:
        if step == at:
            state = checkpoint.load_state(run_dir / checkpoint.STATE, log=lambda m: None)
            seen["step"] = state["step"] if state else None
        return False

    c = resolve("toy2d-ic", [*TINY, f"checkpoint_minutes={minutes}"])
    assert train(c, run_dir, should_stop=look, progress=False) == "done"
    return seen["step"]


@pytest.mark.parametrize(("minutes", "expected"), [(1e-9, 25), (0, None), (60, None)])
def test_the_state_is_written_on_the_first_log_tick_after_the_interval(tmp_path, minutes, expected):
    # Step 27 begins after the tick at step 25; with an interval already spent, that tick
    # saved; with none (0) or one not yet spent (an hour), no state exists before the end.
    assert _state_step_seen_at(tmp_path, minutes, at=27) == expected
