import copy
import itertools

import pytest
import torch
from gcbench.couplings import (
    BatchOTCoupling,
    GeneratorInducedCoupling,
    IndependentCoupling,
    ot_permutation,
)
from gcbench.losses import pseudo_huber
from gcbench.recipes import build_network
from gcbench.schedules import interval_probs, karras_sigmas, loss_weights
from gcbench.train import in_eval_mode, training_step


def _setup(tiny_digits, dropout="0.0"):
    c = tiny_digits("gc", f"dropout={dropout}")
    net = build_network(c).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    for p in ema.parameters():  # an EMA that differs from the online net
        p.add_(0.01 * torch.randn_like(p))
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    s = karras_sigmas(21)
    return net, ema, x, (s, interval_probs(s), loss_weights(s))


def _step(net, coupling, x, grid, endpoint_fn, seed=3):
    net.zero_grad()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    loss, pair = training_step(
        net, coupling, pseudo_huber, x, *grid, step=0, gen=gen, endpoint_fn=endpoint_fn
    )
    loss.backward()
    return loss, pair, [p.grad.clone() for p in net.parameters()]


def _draws(grid, n, seed=3):
    gen = torch.Generator().manual_seed(seed)
    i = torch.multinomial(grid[1], n, replacement=True, generator=gen)
    return i, torch.randn(n, 1, 8, 8, generator=gen)


def test_training_step_loss_is_the_hand_computed_weighted_pseudo_huber(tiny_digits):
    net, ema, x, grid = _setup(tiny_digits)
    loss, _, _ = _step(net, IndependentCoupling(), x, grid, in_eval_mode(ema))
    i, z = _draws(grid, len(x))
    s = grid[0]
    lo, hi = s[i], s[i + 1]
    with torch.no_grad():
        target = net(x + lo.view(-1, 1, 1, 1) * z, lo)
        pred = net(x + hi.view(-1, 1, 1, 1) * z, hi)
    c = 0.00054 * 8  # 0.00054 sqrt(1 * 8 * 8)
    d = ((pred - target).square().sum((1, 2, 3)) + c**2).sqrt() - c
    assert loss.item() == pytest.approx((d / (hi - lo)).mean().item(), rel=1e-5)


def test_gc_with_mu_zero_is_exactly_the_ic_step(tiny_digits):
    net, ema, x, grid = _setup(tiny_digits)
    f = in_eval_mode(ema)
    loss_ic, pair_ic, grads_ic = _step(net, IndependentCoupling(), x, grid, f)
    loss_gc, pair_gc, grads_gc = _step(net, GeneratorInducedCoupling(mu=0.0), x, grid, f)
    assert not pair_gc.is_gc.any()
    assert torch.equal(loss_ic, loss_gc)
    assert torch.equal(pair_ic.x_hi, pair_gc.x_hi)
    assert all(torch.equal(a, b) for a, b in zip(grads_ic, grads_gc, strict=True))


def test_gc_with_mu_one_predicts_every_endpoint_from_ema_at_sigma_lo(tiny_digits):
    net, ema, x, grid = _setup(tiny_digits)
    calls = []

    def recording_ema(x_in, sigma):
        calls.append((x_in.clone(), sigma.clone()))
        return in_eval_mode(ema)(x_in, sigma)

    loss, pair, _ = _step(net, GeneratorInducedCoupling(mu=1.0), x, grid, recording_ema)
    assert pair.is_gc.all()
    ((x_in, sigma),) = calls
    # The draws redone from the step's seed, in training_step's order: i, then z.
    i, z = _draws(grid, len(x))
    assert torch.equal(sigma, grid[0][i]) and torch.equal(pair.noise, z)
    # Same z, lower noise level sigma_i: the predictor sees x + sigma_i z, the pair is
    # (e + sigma_i z, e + sigma_{i+1} z).
    assert torch.allclose(x_in, x + grid[0][i].view(-1, 1, 1, 1) * z)
    assert torch.allclose(pair.x_lo, pair.endpoint + grid[0][i].view(-1, 1, 1, 1) * z)
    assert torch.allclose(pair.x_hi, pair.endpoint + grid[0][i + 1].view(-1, 1, 1, 1) * z)
    assert torch.equal(pair.endpoint, in_eval_mode(ema)(x_in, sigma))
    assert not torch.allclose(pair.endpoint, x)
    assert not pair.endpoint.requires_grad


def test_no_gradient_reaches_the_endpoint_predictor(tiny_digits):
    net, _, x, grid = _setup(tiny_digits)
    predictor = copy.deepcopy(net)  # trainable parameters: a leak would give them .grad
    _step(net, GeneratorInducedCoupling(mu=1.0), x, grid, in_eval_mode(predictor))
    assert all(p.grad is None for p in predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_gc_predicts_only_the_gc_subset(tiny_digits):
    net, ema, x, grid = _setup(tiny_digits)
    sizes = []

    def counting(x_in, sigma):
        sizes.append(len(x_in))
        return in_eval_mode(ema)(x_in, sigma)

    _, pair, _ = _step(net, GeneratorInducedCoupling(mu=0.5), x, grid, counting)
    assert 0 < pair.is_gc.sum() < len(x)
    assert sizes == [int(pair.is_gc.sum())]
    assert torch.equal(pair.endpoint[~pair.is_gc], x[~pair.is_gc])


def test_gc_start_step_turns_gc_off_early():
    x, z = torch.randn(8, 2), torch.randn(8, 2)
    s = torch.ones(8)
    gc = GeneratorInducedCoupling(mu=1.0, start_step=100)
    pair = gc(x, z, s, 2 * s, torch.zeros(8), step=99, endpoint_fn=lambda a, b: a * 0)
    assert not pair.is_gc.any()
    pair = gc(x, z, s, 2 * s, torch.zeros(8), step=100, endpoint_fn=lambda a, b: a * 0)
    assert pair.is_gc.all()


def test_target_and_online_pass_share_dropout_masks(tiny_digits):
    net, ema, x, _ = _setup(tiny_digits, dropout="0.5")
    # A degenerate grid sigma_i = sigma_{i+1}: x_lo == x_hi, so the loss is zero exactly when
    # both passes drop the same units.
    s = torch.tensor([0.5, 0.5])
    grid = (s, torch.ones(1), torch.ones(1))
    loss, _, _ = _step(net, IndependentCoupling(), x, grid, in_eval_mode(ema))
    assert loss.item() == 0.0
    # ...and dropout really is active: two unpaired passes differ.
    assert not torch.equal(net(x, s[:1].expand(16)), net(x, s[:1].expand(16)))


def test_ot_returns_a_permutation_that_does_not_increase_cost():
    gen = torch.Generator().manual_seed(0)
    x, z = torch.randn(64, 3, 4, 4, generator=gen), torch.randn(64, 3, 4, 4, generator=gen)
    perm = ot_permutation(x, z)
    assert sorted(perm.tolist()) == list(range(64))
    before = (x - z).square().sum()
    after = (x - z[perm]).square().sum()
    assert after <= before
    assert after < 0.95 * before


def test_ot_is_the_exact_optimum_on_a_small_batch():
    gen = torch.Generator().manual_seed(1)
    x, z = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
    best = min((x - z[list(p)]).square().sum().item() for p in itertools.permutations(range(6)))
    assert (x - z[ot_permutation(x, z)]).square().sum().item() == pytest.approx(best)


def test_ot_and_gc_ot_couplings_use_the_repaired_noise():
    gen = torch.Generator().manual_seed(2)
    x, z = torch.randn(16, 2, generator=gen), torch.randn(16, 2, generator=gen)
    s = torch.ones(16)
    perm = ot_permutation(x, z)
    ot = BatchOTCoupling()(x, z, s, 2 * s, torch.rand(16), step=0, endpoint_fn=None)
    assert torch.equal(ot.noise, z[perm])
    assert torch.equal(ot.x_hi, x + 2 * z[perm])
    gc_ot = GeneratorInducedCoupling(mu=1.0, ot=True)
    pair = gc_ot(
        x, z, s, 2 * s, torch.zeros(16), step=0, endpoint_fn=lambda a, b: a - b[:, None] * 0
    )
    assert torch.equal(pair.noise, z[perm])
    assert torch.equal(pair.endpoint, x + z[perm])  # the predictor saw x + sigma_i z[perm]
    assert torch.allclose(pair.transport_cost(), (x + z[perm] - z[perm]).square().sum(1))
