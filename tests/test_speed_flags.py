"""GPU speed flags: off by default (the paper trains in fp32), and wired when turned on."""

import pytest
import torch
from gcbench import checkpoint
from gcbench.recipes import RECIPES, resolve
from gcbench.train import train


def test_speed_flags_that_change_the_numbers_are_off_by_default():
    for name in RECIPES:
        c = resolve(name, [])
        assert (c.tf32, c.bf16, c.compile) == (False, False, False), name


def test_bf16_autocast_trains_and_changes_the_arithmetic(tmp_path, tiny_digits):
    fp32, bf16 = (
        tiny_digits("gc", "total_steps=10"),
        tiny_digits("gc", "total_steps=10", "bf16=true"),
    )
    train(fp32, tmp_path / "fp32", progress=False)
    train(bf16, tmp_path / "bf16", progress=False)
    loss32 = [r["loss"] for r in checkpoint.read_metrics(tmp_path / "fp32")]
    loss16 = [r["loss"] for r in checkpoint.read_metrics(tmp_path / "bf16")]
    assert all(map(torch.isfinite, torch.tensor(loss16)))
    assert loss16 != loss32  # the flag reaches the step
    assert loss16 == pytest.approx(loss32, rel=0.05)  # ... and bf16 is still the same loss


@pytest.mark.slow
def test_compiled_training_computes_what_eager_does(tmp_path):
    overrides = ["total_steps=20", "log_every=5", "device=cpu", "keep_state=true"]
    train(resolve("toy2d-gc", overrides), tmp_path / "eager", progress=False)
    train(resolve("toy2d-gc", [*overrides, "compile=true"]), tmp_path / "compiled", progress=False)
    a = checkpoint.load(tmp_path / "eager" / "state.pt")["net"]
    b = checkpoint.load(tmp_path / "compiled" / "state.pt")["net"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


@pytest.mark.slow
def test_compiled_net_draws_the_same_dropout_masks_for_target_and_online_pass():
    """training_step forks the RNG so that both passes drop the same units; under inductor,
    which draws its own RNG seeds, this must still hold (the eager test is in test_couplings)."""
    from gcbench.couplings import IndependentCoupling
    from gcbench.losses import LOSSES
    from gcbench.recipes import build_network
    from gcbench.train import training_step

    c = resolve("toy2d-gc", ["dropout=0.5", "device=cpu"])
    net = torch.compile(build_network(c).train())
    x = torch.randn(64, 2)
    s = torch.tensor([0.5, 0.5])  # a degenerate grid: sigma_i = sigma_{i+1}, so x_lo == x_hi
    with torch.no_grad():  # one graph to compile instead of two (grad mode is guarded on)
        loss, _ = training_step(
            net,
            IndependentCoupling(),
            LOSSES[c.loss],
            x,
            s,
            torch.ones(1),
            torch.ones(1),
            step=0,
            gen=torch.Generator().manual_seed(0),
            endpoint_fn=None,
        )
    assert loss.item() == 0.0  # zero exactly when both passes drop the same units
    sigma = s[:1].expand(64)
    with torch.no_grad():
        assert not torch.equal(net(x, sigma), net(x, sigma))  # ...and dropout is active
