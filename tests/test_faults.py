"""Fault tolerance on the CPU: crashes during checkpoint writes, corrupted checkpoints, NaNs."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from gcbench import checkpoint
from gcbench.train import NonFiniteLossError, train


def _state(run):
    return checkpoint.load(run / checkpoint.STATE)


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[part][k], b[part][k]) for part in ("net", "ema") for k in a[part])


def test_kill_9_while_writing_checkpoints_leaves_a_loadable_state(tmp_path):
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "gcbench",
        "train",
        "--recipe",
        "digits8-ic",
        "--no-progress",
        "--set",
        "checkpoint_every=1",
        "--set",
        "total_steps=100000",
        "--set",
        "batch_size=8",
        "--set",
        "device=cpu",
        "--run-dir",
        str(run),
    ]
    for delay in (0.0, 0.05, 0.11, 0.23, 0.37):  # kills land at different points of the writes
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not (run / "state.pt").exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = checkpoint.load_state(run / checkpoint.STATE)
        assert state is not None and state["step"] >= 1


def _interrupted_run(tmp_path, tiny_digits):
    c = tiny_digits("gc", "checkpoint_every=10", "total_steps=30")
    train(c, tmp_path / "straight", progress=False)
    run = tmp_path / "run"
    train(c, run, should_stop=lambda step: step == 25, progress=False)
    assert _state(run)["step"] == 25 and (run / "state.prev.pt").exists()
    return c, run


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_state_is_detected_and_the_previous_one_resumes(
    tmp_path, tiny_digits, capsys, damage
):
    c, run = _interrupted_run(tmp_path, tiny_digits)
    data = (run / "state.pt").read_bytes()
    if damage == "truncate":
        (run / "state.pt").write_bytes(data[: len(data) // 2])
    else:
        (run / "state.pt").write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    assert train(c, run, progress=False) == "done"
    assert "resuming from state.prev.pt at step 20" in capsys.readouterr().out
    # Resuming from step 20 is exact as well: nothing is lost but recomputation.
    assert _equal(_state(run), _state(tmp_path / "straight"))


def test_both_states_damaged_is_a_clear_error(tmp_path, tiny_digits):
    c, run = _interrupted_run(tmp_path, tiny_digits)
    for name in ("state.pt", "state.prev.pt"):
        (run / name).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CorruptStateError, match="no intact resume state"):
        train(c, run, progress=False)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_state(tmp_path, tiny_digits):
    c = tiny_digits("ic", "lr=1e30", "checkpoint_every=1", "log_every=1", "total_steps=200")
    with pytest.raises(NonFiniteLossError, match=r"the last good state \(step \d+\) is kept"):
        train(c, tmp_path, progress=False)
    state = checkpoint.load_state(tmp_path / checkpoint.STATE)
    assert all(torch.isfinite(v).all() for v in state["net"].values())
    assert not (tmp_path / "done.json").exists()
