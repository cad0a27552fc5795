import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from gcbench import checkpoint
from gcbench.recipes import ConfigError, build_network, resolve
from gcbench.train import train, training_step

METRIC_FIELDS = {
    "step",
    "loss",
    "n_points",
    "transport_cost_ic",
    "transport_cost_gc",
    "gc_fraction",
    "step_time",
    "step_cpu_time",
    "images_per_s",
    "train_seconds",
    "cpu_seconds",
    "time",
}


def _final_state(run_dir):
    return checkpoint.load(run_dir / checkpoint.STATE)


def _assert_bitwise_equal(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_bitwise_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_bitwise_equal(x, y, f"{path}[{i}]")
    elif path not in ("state.train_seconds", "state.cpu_seconds"):
        assert a == b, f"{path}: {a} != {b}"


def test_resume_is_bitwise_exact(tmp_path, tiny_digits):
    # GC+OT with dropout exercises every RNG: sigma indices, noise, GC choices, dropout masks.
    c = tiny_digits("gc_ot", "dropout=0.2")
    assert train(c, tmp_path / "straight", progress=False) == "done"
    interrupted = tmp_path / "interrupted"
    assert train(c, interrupted, should_stop=lambda step: step == 17, progress=False) == "stopped"
    assert _final_state(interrupted)["step"] == 17
    assert train(c, interrupted, progress=False) == "done"
    _assert_bitwise_equal(_final_state(tmp_path / "straight"), _final_state(interrupted))
    starts = checkpoint.read_jsonl(interrupted / "provenance.jsonl")
    assert [s["event"] for s in starts] == ["start", "resume"]
    assert [s["precision"] for s in starts] == ["fp32", "fp32"]  # what the loss was computed in


def test_run_directory_contents(tmp_path, tiny_digits):
    c = tiny_digits("gc")
    train(c, tmp_path, progress=False)
    rows = checkpoint.read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert all(METRIC_FIELDS <= r.keys() for r in rows)
    assert all(0 < r["gc_fraction"] < 1 for r in rows)
    assert list(checkpoint.list_snapshots(tmp_path)) == [20, 40]
    snap = checkpoint.load(checkpoint.find_snapshot(tmp_path, "final"))
    assert snap["step"] == 40 and {"ema", "net", "config"} <= snap.keys()
    assert json.loads((tmp_path / "config.json").read_text()) == c.to_dict()
    prov = checkpoint.read_jsonl(tmp_path / "provenance.jsonl")[0]
    for key in ("git_commit", "git_dirty", "versions", "host", "seed", "slurm_job_id"):
        assert key in prov
    # The installed distribution's version; torch.__version__ may add a local tag (+cu130).
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["step"] == 40 and (done["gpu"], done["gpu_count"]) == ("cpu", 0)  # the budget's


def test_resume_refuses_a_changed_config(tmp_path, tiny_digits):
    train(tiny_digits("gc", "total_steps=10"), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"mu: 0.5 -> 0.3"):
        train(tiny_digits("gc", "total_steps=10", "mu=0.3"), tmp_path, progress=False)


def test_ema_follows_the_schedule(tmp_path, tiny_digits):
    """After steps 0..4 (copy at 0, untouched at 1-4) the EMA equals the weights after step 0."""
    c = tiny_digits("ic", "total_steps=1", "snapshot_every=1")
    train(c, tmp_path / "one", progress=False)
    c5 = tiny_digits("ic", "total_steps=5", "snapshot_every=1")
    train(c5, tmp_path / "five", progress=False)
    after_first = checkpoint.load(checkpoint.snapshot_path(tmp_path / "one", 1))
    after_five = checkpoint.load(checkpoint.snapshot_path(tmp_path / "five", 5))
    _assert_bitwise_equal(after_first["net"], after_first["ema"])
    _assert_bitwise_equal(after_first["net"], after_five["ema"])
    assert not torch.equal(
        after_five["net"]["backbone.out_conv.bias"], after_five["ema"]["backbone.out_conv.bias"]
    )


def test_ema_value_after_the_averaging_at_step_5():
    from gcbench.ema import update_ema

    net, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    for k in range(6):  # optimizer steps 0..5; the weights after step k are all k + 1
        for t in (net.weight, net.bias, net.running_mean):
            t.data.fill_(k + 1.0)
        net.num_batches_tracked.fill_(10 * k)
        update_ema(ema, net, k, beta=0.9999, every=5)
    # Copy at 0 (value 1), untouched at 1-4, then decay = 1 - (1 + 5)^(-2/3) = 0.69715 at 5.
    expected = 0.69715 * 1 + (1 - 0.69715) * 6
    for t in (ema.weight, ema.bias, ema.running_mean):  # buffers averaged like weights
        assert torch.allclose(t, torch.full((3,), expected), atol=1e-4)
    assert ema.num_batches_tracked.item() == 50  # integer buffers are copied


@pytest.mark.parametrize("endpoint", ["online", "ema"])
def test_gc_endpoint_network_is_the_configured_one(tmp_path, tiny_digits, monkeypatch, endpoint):
    import gcbench.train as train_module

    wrapped = []
    real = train_module.in_eval_mode
    monkeypatch.setattr(train_module, "in_eval_mode", lambda net: wrapped.append(net) or real(net))
    c = tiny_digits("gc", "mu=1.0", f"endpoint={endpoint}", "total_steps=6", "snapshot_every=6")
    train(c, tmp_path, progress=False)
    (predictor,) = wrapped
    final = checkpoint.load(checkpoint.find_snapshot(tmp_path, "final"))
    other = "ema" if endpoint == "online" else "net"
    _assert_bitwise_equal(predictor.state_dict(), final["net" if endpoint == "online" else "ema"])
    assert not all(torch.equal(v, final[other][k]) for k, v in predictor.state_dict().items())


def _fixed_batch_loss(net, c):
    """The loss on one fixed batch, sigma grid and noise: comparable across weights."""
    from gcbench.couplings import IndependentCoupling
    from gcbench.data import TrainingData
    from gcbench.losses import LOSSES
    from gcbench.schedules import interval_probs, karras_sigmas, loss_weights

    x = TrainingData(c.dataset).batch(0, 256, seed=123, device=torch.device("cpu"))
    s = karras_sigmas(c.s1 + 1, c.sigma_min, c.sigma_max)
    with torch.no_grad():
        loss, _ = training_step(
            net.eval(),
            IndependentCoupling(),
            LOSSES[c.loss],
            x,
            s,
            interval_probs(s),
            loss_weights(s),
            step=0,
            gen=torch.Generator().manual_seed(0),
            endpoint_fn=None,
        )
    return loss.item()


def test_a_300_step_digits_run_lowers_its_loss(tmp_path):
    c = resolve(
        "digits8-ic", ["batch_size=32", "total_steps=300", "log_every=50", "lr=4e-4", "device=cpu"]
    )
    train(c, tmp_path, progress=False)
    assert len(checkpoint.read_metrics(tmp_path)) == 6
    torch.manual_seed(c.seed)  # the initial weights of the run
    initial = build_network(c)
    trained = build_network(c)
    trained.load_state_dict(checkpoint.load(checkpoint.find_snapshot(tmp_path))["net"])
    before, after = _fixed_batch_loss(initial, c), _fixed_batch_loss(trained, c)
    assert after < 0.9 * before, (before, after)


def test_sigusr2_saves_state_and_the_rerun_resumes_exactly(tmp_path, tiny_digits):
    overrides = [
        "keep_state=true",  # compared below with the uninterrupted final state
        "model_channels=8",
        "batch_size=16",
        "total_steps=400",
        "log_every=1",
        "snapshot_every=1000",
        "checkpoint_every=1000",
        "device=cpu",
        "dropout=0.1",
    ]
    args = [
        sys.executable,
        "-m",
        "gcbench.cli",
        "train",
        "--recipe",
        "digits8-gc",
        "--no-progress",
        *[a for o in overrides for a in ("--set", o)],
    ]
    run = tmp_path / "signalled"
    proc = subprocess.Popen([*args, "--run-dir", str(run)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(checkpoint.read_jsonl(run / "metrics.jsonl")) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGUSR2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "state saved" in err
    stopped_at = _final_state(run)["step"]
    assert 3 <= stopped_at < 40
    resumed = subprocess.run([*args, "--run-dir", str(run)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run([*args, "--run-dir", str(tmp_path / "s")], capture_output=True)
    assert straight.returncode == 0
    _assert_bitwise_equal(_final_state(tmp_path / "s"), _final_state(run))


def test_checkpoints_load_without_pickled_code(tmp_path, tiny_digits):
    train(tiny_digits("ic", "total_steps=2"), tmp_path, progress=False)
    torch.load(tmp_path / checkpoint.STATE, weights_only=True)  # raises on pickled objects
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_snapshot_has_its_training_seconds_in_the_log(tmp_path, tiny_digits):
    # Snapshots every 15 steps, log lines every 10: the wall-clock curve needs each snapshot's
    # seconds, so the snapshot steps are logged as well.
    c = tiny_digits("ic", "total_steps=30", "snapshot_every=15", "log_every=10")
    train(c, tmp_path, progress=False)
    rows = checkpoint.read_metrics(tmp_path)
    logged = {r["step"]: r["train_seconds"] for r in rows}
    assert sorted(checkpoint.list_snapshots(tmp_path)) == [15, 30]
    assert set(logged) == {10, 15, 20, 30}
    assert 0 < logged[10] < logged[15] < logged[20] < logged[30]
    cpu = [r["cpu_seconds"] for r in rows]  # the CPU-time budget advances with them
    assert 0 < cpu[0] < cpu[1] < cpu[2] < cpu[3]
    done = json.loads((tmp_path / "done.json").read_text())
    assert done["cpu_seconds"] == cpu[-1] and done["train_seconds"] == logged[30]
