"""ECT (Table 2): the t -> r mapping, the loss, the shared dropout masks, GC where r > 0,
pretraining and fine-tuning runs that resume exactly, and the wall-clock cap."""

import math

import pytest
import torch
from gcbench import checkpoint
from gcbench.couplings import GeneratorInducedCoupling, IndependentCoupling
from gcbench.ect import denoising_step, ect_step
from gcbench.recipes import ConfigError, resolve
from gcbench.schedules import ect_r, ect_stage
from gcbench.train import train
from test_train import _assert_bitwise_equal, _final_state
from torch import nn

ECT_ARGS = dict(p_mean=-1.1, p_std=2.0, q=2.0, stage_steps=100, c=0.0)


def _lognormal_t(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (-1.1 + 2.0 * torch.randn(n, generator=gen, dtype=torch.float64)).exp()


@pytest.mark.parametrize(("stage", "expected"), [(0, 0.81), (1, 0.59)])
def test_r_is_zero_as_often_as_ect_says(stage, expected):
    t = _lognormal_t(400_000)
    share = (ect_r(t, stage, q=2.0) == 0).double().mean().item()
    assert share == pytest.approx(expected, abs=0.01)


def test_r_stays_below_t_and_its_gap_shrinks_by_q_each_stage():
    t = _lognormal_t(10_000)
    gaps = []
    for stage in range(4):
        r = ect_r(t, stage, q=2.0)
        assert (r >= 0).all() and (r < t).all()
        gaps.append((t - r)[r > 0])
    # Where r > 0 in both stages, t - r = t n(t) / q^(s+1): halved by each stage.
    both = ect_r(t, 2, 2.0) > 0
    assert torch.allclose((t - ect_r(t, 2, 2.0))[both], (t - ect_r(t, 3, 2.0))[both] * 2)
    assert ect_stage(24_999, 25_000) == 0 and ect_stage(25_000, 25_000) == 1
    assert ect_stage(10**6, 0) == 0  # the short run: stages never advance


class _Recorder(nn.Module):
    """f(x, sigma) = a x + b sigma (per sample), recording every sigma and preconditioning."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(0.3))
        self.calls = []

    def forward(self, x, sigma, sigma_min=None):
        self.calls.append((sigma.detach().clone(), sigma_min, torch.is_grad_enabled()))
        return self.a * x + self.b * sigma.reshape(-1, *[1] * (x.ndim - 1))


def test_ect_loss_equals_a_hand_computation():
    net, x = _Recorder(), torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    args = dict(ECT_ARGS, stage_steps=0, c=0.1)
    loss, pair = ect_step(
        net,
        IndependentCoupling(),
        x,
        step=0,
        gen=torch.Generator().manual_seed(5),
        endpoint_fn=None,
        **args,
    )
    # The same draws, in the step's order: t, z, u.
    gen = torch.Generator().manual_seed(5)
    t = (-1.1 + 2.0 * torch.randn(6, generator=gen)).exp()
    z = torch.randn(6, 1, 2, 2, generator=gen)
    n = 1 + 8 * torch.sigmoid(-t)
    r = (t * (1 - n / 2.0)).clamp_min(0)
    expected = []
    for k in range(6):
        pred = 0.7 * (x[k] + t[k] * z[k]) + 0.3 * t[k]
        x_r = x[k] + r[k] * z[k]
        target = 0.7 * x_r + 0.3 * r[k] if r[k] > 0 else x[k]
        d = (pred - target).square().sum()
        expected.append(((d + 0.01).sqrt() - 0.1) / (t[k] - r[k]))
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    assert 0 < int((r == 0).sum()) < 6  # the draw covers both kinds of pair
    # r = 0 never reaches the network; training preconditions as EDM's denoiser (sigma_min=0).
    assert all((sigma > 0).all() and sigma_min == 0.0 for sigma, sigma_min, _ in net.calls)
    target_call, pred_call = net.calls
    assert not target_call[2] and pred_call[2]  # the target has no gradient, the prediction has


class _MaskEcho(nn.Module):
    """Its output is x times a dropout mask of x's shape: the mask is visible in the output."""

    def forward(self, x, sigma, sigma_min=None):
        return x * nn.functional.dropout(torch.ones_like(x), p=0.5, training=True)


def test_target_and_prediction_share_the_dropout_masks(monkeypatch):
    import gcbench.ect as ect

    outputs = []
    real = ect.pseudo_huber
    monkeypatch.setattr(
        ect, "pseudo_huber", lambda a, b, c: outputs.append((a, b)) or real(a, b, c)
    )
    x = torch.ones(64, 1, 4, 4)
    ect_step(
        _MaskEcho(),
        IndependentCoupling(),
        x,
        step=0,
        gen=torch.Generator().manual_seed(0),
        endpoint_fn=None,
        **dict(ECT_ARGS, q=256.0, stage_steps=0),  # q = 256: r > 0 for most samples
    )
    ((pred, target),) = outputs
    t = (-1.1 + 2.0 * torch.randn(64, generator=torch.Generator().manual_seed(0))).exp()
    stepped = ect_r(t, 0, 256.0) > 0
    assert stepped.sum() > 32
    # Rows with r > 0: the same zero pattern in prediction and target (x_t, x_r are nonzero).
    assert torch.equal(pred[stepped] == 0, target[stepped] == 0)
    assert 0.3 < (pred[stepped] == 0).float().mean() < 0.7  # masks were drawn at all


def test_gc_predicts_endpoints_only_where_r_is_positive_without_gradient():
    seen = []

    def endpoint_fn(x, sigma):
        seen.append((sigma.clone(), torch.is_grad_enabled()))
        return torch.full_like(x, 9.0)

    x = torch.zeros(512, 1, 2, 2)
    _, pair = ect_step(
        _Recorder(),
        GeneratorInducedCoupling(mu=0.3),
        x,
        step=0,
        gen=torch.Generator().manual_seed(2),
        endpoint_fn=endpoint_fn,
        **ECT_ARGS,  # stage 0: r = 0 for about 81% of samples
    )
    t = (-1.1 + 2.0 * torch.randn(512, generator=torch.Generator().manual_seed(2))).exp()
    r = ect_r(t, 0, 2.0)
    assert (r[pair.is_gc] > 0).all()  # never where r = 0
    share = pair.is_gc.sum() / (r > 0).sum()
    assert 0.15 < share < 0.45  # about mu = 0.3 of the pairs with a model step
    ((sigma, grad),) = seen
    assert not grad and torch.equal(sigma, r[pair.is_gc])  # predicted from x_r at r
    assert (pair.endpoint[pair.is_gc] == 9).all() and (pair.endpoint[~pair.is_gc] == 0).all()


def test_edm_loss_is_the_weighted_denoising_error():
    net, x = _Recorder(), torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(3))
    loss = denoising_step(
        net, x, gen=torch.Generator().manual_seed(4), p_mean=-1.2, p_std=1.2, sigma_data=0.5
    )
    gen = torch.Generator().manual_seed(4)
    sigma = (-1.2 + 1.2 * torch.randn(5, generator=gen)).exp()
    z = torch.randn(5, 1, 2, 2, generator=gen)
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    s = sigma.reshape(-1, 1, 1, 1)
    error = (0.7 * (x + s * z) + 0.3 * s - x).square().flatten(1).sum(1)
    assert loss.item() == pytest.approx((weight * error).mean().item(), rel=1e-5)


def _digits(recipe: str, *overrides: str):
    return resolve(
        recipe,
        [
            "mlp_hidden=32",
            "batch_size=16",
            "total_steps=30",
            "log_every=5",
            "snapshot_every=10",
            "checkpoint_every=1000",
            "keep_state=true",  # the tests compare final resume states
            "device=cpu",
            *overrides,
        ],
    )


@pytest.fixture
def denoiser(tmp_path):
    run = tmp_path / "pretrain"
    assert train(_digits("digits8_edm-ic", "lr_rampup_steps=10"), run, progress=False) == "done"
    return run


def test_ect_fine_tuning_starts_from_the_denoiser_and_resumes_exactly(tmp_path, denoiser):
    # GC with dropout, a stage every 10 steps: every RNG and every branch of the step.
    c = _digits("digits8_ect_long-gc", f"init={denoiser}", "ect_stage_steps=10")
    straight = tmp_path / "straight"
    assert train(c, straight, progress=False) == "done"
    pretrained = checkpoint.load(checkpoint.find_snapshot(denoiser, "final"))["ema"]
    start = checkpoint.read_jsonl(straight / "provenance.jsonl")[0]
    final = checkpoint.find_snapshot(denoiser, "final")
    assert start["init"] == str(denoiser) and start["init_sha256"] == checkpoint.sha256(final)
    # Fine-tuning moved the online net from the denoiser; the EMA follows it slowly.
    state, w = _final_state(straight), "backbone.body.0.weight"
    net_moved = (state["net"][w] - pretrained[w]).abs().mean()
    ema_moved = (state["ema"][w] - pretrained[w]).abs().mean()
    assert net_moved > 0 and 0 < ema_moved < 0.3 * net_moved

    interrupted = tmp_path / "interrupted"
    assert train(c, interrupted, should_stop=lambda step: step == 13, progress=False) == "stopped"
    assert train(c, interrupted, progress=False) == "done"
    _assert_bitwise_equal(_final_state(straight), _final_state(interrupted))


def test_the_wall_clock_cap_ends_a_run_with_its_final_snapshot(tmp_path):
    c = _digits("digits8_ect_short-ic", "init=random", "total_steps=100000", "max_train_seconds=2")
    assert train(c, tmp_path, progress=False) == "done"
    done = checkpoint.read_json(tmp_path / "done.json")
    assert 0 < done["step"] < 100_000 and done["train_seconds"] >= 2
    assert max(checkpoint.list_snapshots(tmp_path)) == done["step"]  # the last step is saved
    assert _final_state(tmp_path)["step"] == done["step"]
    assert train(c, tmp_path, progress=False) == "done"  # a rerun finds it finished
    assert _final_state(tmp_path)["step"] == done["step"]


def test_ect_configs_refuse_what_ect_does_not_run():
    with pytest.raises(ConfigError, match="coupling=ot is built for objective=ict"):
        resolve("digits8_ect_long-ic", ["coupling=ot"])
    with pytest.raises(ConfigError, match="objective=edm pretrains a denoiser"):
        resolve("digits8_edm-ic", ["coupling=gc", "mu=0.3"])
    with pytest.raises(ConfigError, match="objective=ect fine-tunes a pretrained denoiser"):
        resolve("digits8_ect_long-ic", ["init="])
    with pytest.raises(ConfigError, match="ect_q > 1"):
        resolve("digits8_ect_long-ic", ["ect_q=1"])


def test_ect_recipes_carry_ects_settings():
    long, short = resolve("cifar10_ect_long-gc"), resolve("cifar10_ect_short-ic")
    assert (long.objective, long.mu, long.dropout, long.batch_size) == ("ect", 0.3, (0.2,) * 3, 128)
    assert (long.optimizer, long.lr, long.beta2, long.ema_beta) == ("radam", 1e-4, 0.999, 0.9999)
    assert not long.ema_warmup and long.ema_every == 1 and long.ect_c == 0
    assert (long.ect_q, long.ect_stage_steps, long.total_steps) == (2.0, 25_000, 100_000)
    assert (short.ect_q, short.ect_stage_steps, short.ema_beta) == (256.0, 0, 0.9993)
    assert short.max_train_seconds == 3600 and short.dropout == (0.2,) * 3  # IC keeps it too
    assert long.init == "edm-cifar10" and resolve("ffhq64_ect_long-gc").init == "edm-ffhq64"
    assert math.isclose(resolve("digits8_ect_long-gc").mu, 0.3)
    # The fixed-step form for mixed clusters: ECT short's schedule, no wall-clock cap, the
    # step count given (one reference-GPU hour).
    steps = resolve("cifar10_ect_short_steps-gc", ["total_steps=12345"])
    assert steps.max_train_seconds == 0 and steps.total_steps == 12_345
    assert (steps.ect_q, steps.ect_stage_steps, steps.ema_beta) == (256.0, 0, 0.9993)


def test_ect_two_step_sampling_renoises_with_std_mid():
    from gcbench.sample import SIGMA_MID, renoise_floor, sample

    def f(x, sigma):  # 0 from pure noise, identity at sigma_mid: the output is the renoise
        return torch.zeros_like(x) if sigma[0] > 1 else x

    ect, ict = resolve("digits8_ect_short-gc"), resolve("digits8-gc")
    assert renoise_floor(ect) == 0.0 and renoise_floor(ict) == ict.sigma_min
    x = sample(f, 4000, (1, 8, 8), steps=2, sigma_min=renoise_floor(ect))
    assert x.std().item() == pytest.approx(SIGMA_MID, rel=0.01)


def test_ects_ema_keeps_beta_to_the_k_of_the_pretrained_weights():
    from gcbench.ema import update_ema

    ema, net = nn.Linear(3, 3), nn.Linear(3, 3)
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    for step in range(40):  # no warm-up, no copy at step 0: beta from the first update
        update_ema(ema, net, step, beta=0.9, every=1, warmup=False)
    for k, v in ema.state_dict().items():
        expected = net.state_dict()[k] + 0.9**40 * (start[k] - net.state_dict()[k])
        assert torch.allclose(v, expected, atol=1e-6)
