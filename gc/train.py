"""Consistency training: one step (`training_step`) and one loop (`train`) for every variant.

The coupling is injected (couplings.py); the loop never asks which variant it runs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from lion_pytorch import Lion
from torch import Tensor, nn
from tqdm import tqdm

from . import checkpoint, provenance
from .couplings import COUPLINGS, Coupling, EndpointFn, Pair
from .data import TrainingData
from .distributed import SINGLE, Shard
from .ema import update_ema
from .losses import LOSSES
from .recipes import ConfigError, TrainConfig, build_network
from .runtime import pick_device, set_tf32
from .schedules import interval_probs, karras_sigmas, loss_weights, num_sigma_points


class NonFiniteLossError(RuntimeError):
    pass


def training_step(
    net: nn.Module,
    coupling: Coupling,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigmas: Tensor,
    probs: Tensor,
    weights: Tensor,
    *,
    step: int,
    gen: torch.Generator,
    endpoint_fn: EndpointFn,
    shard: Shard = SINGLE,
) -> tuple[Tensor, Pair]:
    """The consistency-training loss of one batch (DESIGN.md section 3), not yet backpropagated.

    i ~ p; one z per sample; (x_lo, x_hi) from the coupling;
    loss = mean(lambda_i d(f(x_hi, sigma_{i+1}), stopgrad f(x_lo, sigma_i))).
    `x` is this rank's rows of the global batch: the draws are made for the global batch and
    sliced, so that any number of ranks computes the same per-sample values.
    """
    n, rows = x.shape[0] * shard.world, shard.rows(x.shape[0] * shard.world)
    i = torch.multinomial(probs, n, replacement=True, generator=gen)[rows]
    z = torch.randn((n, *x.shape[1:]), generator=gen, device=x.device)[rows]
    u = torch.rand(n, generator=gen, device=x.device)[rows]  # picks the GC subset
    sigma_lo, sigma_hi = sigmas[i], sigmas[i + 1]
    pair = coupling(x, z, sigma_lo, sigma_hi, u, step=step, endpoint_fn=endpoint_fn)
    # iCT's target is the online net itself, not an EMA teacher. Forking the RNG makes both
    # passes draw the same dropout masks.
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        target = net(pair.x_lo, sigma_lo)
    pred = net(pair.x_hi, sigma_hi)
    return (weights[i] * loss_fn(pred, target)).mean(), pair


def in_eval_mode(net: nn.Module) -> EndpointFn:
    """f(x, sigma) from `net` without dropout: GC endpoints are the generator's own outputs."""

    def predict(x: Tensor, sigma: Tensor) -> Tensor:
        was_training = net.training
        net.eval()
        try:
            return net(x, sigma)
        finally:
            net.train(was_training)

    return predict


def make_optimizer(c: TrainConfig, params) -> torch.optim.Optimizer:
    betas = (c.beta1, c.beta2)
    if c.optimizer == "lion":
        return Lion(params, lr=c.lr, betas=betas, weight_decay=0.0)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, betas=betas)
    return torch.optim.RAdam(params, lr=c.lr, betas=betas)


def _check_config(run_dir: Path, c: TrainConfig, write: bool = True) -> None:
    """Write config.json (if `write`), or check that a resumed run keeps the config it started
    with. Every rank checks, so that all of them fail together before any collective."""
    path = run_dir / "config.json"
    if not path.exists():
        if write:
            checkpoint.write_json(c.to_dict(), path)
        return
    old = checkpoint.read_json(path)
    changed = {k: (old.get(k), v) for k, v in c.to_dict().items() if old.get(k) != v}
    changed.pop("device", None)  # where a run resumes does not change what it computes
    if changed:
        diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ConfigError(
            f"{run_dir} holds a run with a different config ({diff}). Resume it with its own "
            f"settings, or start the new config in another --run-dir."
        )


def _rng_state(gen: torch.Generator, device: torch.device, shard: Shard) -> dict:
    """The shared generator's state, and every rank's own (dropout) RNG states."""
    own = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        own["cuda"] = torch.cuda.get_rng_state(device)
    return {"gen": gen.get_state(), "ranks": shard.gather(own)}


def _set_rng_state(state: dict, gen: torch.Generator, device: torch.device, shard: Shard) -> None:
    gen.set_state(state["gen"])
    if len(state["ranks"]) != shard.world:
        # Only the dropout streams depend on the rank count; the data and noise do not.
        if shard.is_main:
            print(
                f"warning: the state was saved by {len(state['ranks'])} ranks and resumes on "
                f"{shard.world}: dropout masks are drawn afresh, so the run is not bitwise "
                f"what it would have been"
            )
        return
    own = state["ranks"][shard.rank]
    torch.set_rng_state(own["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(own["cuda"], device)


def _sigma_grid(n: int, c: TrainConfig, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    sigmas = karras_sigmas(n, c.sigma_min, c.sigma_max, c.rho)
    probs = interval_probs(sigmas, c.p_mean, c.p_std)
    return sigmas.to(device), probs.to(device), loss_weights(sigmas).to(device)


def train(
    c: TrainConfig,
    run_dir: str | Path,
    should_stop: Callable[[int], bool] = lambda step: False,
    progress: bool = True,
    shard: Shard = SINGLE,
) -> str:
    """Train `c` in `run_dir`, resuming from its state if there is one.

    Returns "done" when total_steps is reached, or "stopped" when `should_stop(step)` asked to
    stop (on any rank), in which case the state was saved and the same call resumes exactly.
    With several ranks (distributed.py) each trains on its rows of the global batch under DDP;
    only rank 0 writes.
    """
    run_dir = Path(run_dir)
    main = shard.is_main
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, c, write=main)
    device = pick_device(c.device)
    cuda = device.type == "cuda"
    # TF32 is a recorded config field: it changes the numbers on Ampere and later GPUs.
    set_tf32(c.tf32)
    data = TrainingData(c.dataset, c.data_dir)
    rows = shard.rows(c.batch_size)
    layout = torch.channels_last if cuda and c.channels_last and len(data.shape) == 3 else None

    # ---- model, EMA, optimizer, RNGs: fresh, or restored from the resume state ----
    torch.manual_seed(c.seed)  # weight init and the dropout stream
    net = build_network(c).to(device, memory_format=layout).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    optimizer = make_optimizer(c, net.parameters())
    gen = torch.Generator(device).manual_seed(c.seed)  # sigma indices, noise, GC choices
    if shard.rank:  # other dropout masks on other ranks; rank 0 matches a 1-process run
        torch.manual_seed(c.seed + 1_000_003 * shard.rank)
    step, train_seconds = 0, 0.0
    state_path = run_dir / checkpoint.STATE
    state = checkpoint.load_state(state_path, log=print if main else lambda message: None)
    if state is not None:
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], gen, device, shard)
        step, train_seconds = state["step"], state["train_seconds"]
    if main:
        checkpoint.append_jsonl(
            provenance.collect(
                event="resume" if step else "start", step=step, seed=c.seed, world_size=shard.world
            ),
            run_dir / "provenance.jsonl",
        )
    model = _compiled(_data_parallel(net, shard, device), c)

    def save_state() -> None:
        rng = _rng_state(gen, device, shard)  # a collective: every rank takes part
        if not main:
            return
        checkpoint.save_state(
            dict(
                net=net.state_dict(),
                ema=ema.state_dict(),
                optimizer=optimizer.state_dict(),
                rng=rng,
                step=step,
                train_seconds=train_seconds,
                config=c.to_dict(),
            ),
            state_path,
        )

    def stop_if_not_finite(loss: float) -> None:
        if not math.isfinite(loss):  # the loss is reduced over ranks: all ranks stop together
            good = checkpoint.load_state(state_path, log=lambda message: None)
            kept = (
                f"the last good state (step {good['step']}) is kept in {state_path}"
                if good
                else "no state was saved before it, so a rerun starts from step 0"
            )
            raise NonFiniteLossError(
                f"loss is {loss} at step {step}; {kept}. Lower lr or check the data, then "
                f"rerun to resume."
            )

    coupling = COUPLINGS[c.variant](c.mu, c.gc_start_step)
    loss_fn = LOSSES[c.loss]
    endpoint_fn = in_eval_mode(ema if c.endpoint == "ema" else net)
    grid_points, grid = 0, None
    window = _Window(device, shard)
    bar = tqdm(total=c.total_steps, initial=step, unit="step", disable=not (progress and main))
    tick_start = time.perf_counter()

    while step < c.total_steps:
        if shard.any(should_stop(step), device):
            train_seconds += time.perf_counter() - tick_start
            save_state()
            bar.close()
            return "stopped"

        # ---- batch and discretisation (the curriculum N(k) grows during training) ----
        n_points = num_sigma_points(step, c.total_steps, c.s0, c.s1)
        if n_points != grid_points:
            grid_points, grid = n_points, _sigma_grid(n_points, c, device)
        x = data.batch(step, c.batch_size, c.seed, device, rows)
        if layout is not None:
            x = x.contiguous(memory_format=layout)

        # ---- coupling and loss ----
        with torch.autocast(device.type, torch.bfloat16, enabled=c.bf16):
            loss, pair = training_step(
                model,
                coupling,
                loss_fn,
                x,
                *grid,
                step=step,
                gen=gen,
                endpoint_fn=endpoint_fn,
                shard=shard,
            )

        # ---- optimizer step and EMA ----
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()
        update_ema(ema, net, step, c.ema_beta, c.ema_every)
        window.add(loss.detach(), pair)
        step += 1
        bar.update(1)

        # ---- per-tick maintenance: log, snapshot, checkpoint ----
        last = step == c.total_steps
        if step % c.log_every == 0 or last:
            now = time.perf_counter()
            train_seconds += now - tick_start
            tick_start = now
            row = window.summary(step, n_points, c.batch_size, train_seconds)
            stop_if_not_finite(row["loss"])
            if main:
                checkpoint.append_jsonl(row, run_dir / "metrics.jsonl")
            bar.set_postfix(loss=f"{row['loss']:.4g}", N=n_points)
        saving = step % c.snapshot_every == 0 or step % c.checkpoint_every == 0 or last
        if saving:
            stop_if_not_finite(window.running_loss())  # never save a diverged model
        if main and (step % c.snapshot_every == 0 or last):
            snap = dict(step=step, net=net.state_dict(), ema=ema.state_dict(), config=c.to_dict())
            checkpoint.save(snap, checkpoint.snapshot_path(run_dir, step))
        if step % c.checkpoint_every == 0 or last:
            save_state()

    bar.close()
    if main:
        checkpoint.write_json(
            dict(step=step, train_seconds=train_seconds, final_loss=_last_loss(run_dir)),
            run_dir / "done.json",
        )
    return "done"


def _data_parallel(net: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """DDP over the ranks (gradients averaged: the global batch's mean loss); the bare net
    with one rank. The EMA and the GC endpoint network stay outside DDP."""
    if shard.world == 1:
        return net
    ids = [device.index or 0] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def _compiled(model: nn.Module, c: TrainConfig) -> nn.Module:
    return torch.compile(model) if c.compile else model


def _last_loss(run_dir: Path) -> float | None:
    rows = checkpoint.read_metrics(run_dir)
    return rows[-1]["loss"] if rows else None


class _Window:
    """Running sums between two log ticks, kept on the device to avoid a sync per step, and
    summed over ranks at each tick."""

    def __init__(self, device: torch.device, shard: Shard = SINGLE):
        self.device, self.shard = device, shard
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.sums = torch.zeros(5, device=self.device, dtype=torch.float64)
        self.started = time.perf_counter()

    def add(self, loss: Tensor, pair: Pair) -> None:
        cost = pair.transport_cost().double()
        gc = pair.is_gc.double()
        self.sums += torch.stack(
            [loss.double(), (cost * (1 - gc)).sum(), (1 - gc).sum(), (cost * gc).sum(), gc.sum()]
        )
        self.steps += 1

    def _global(self) -> list[float]:
        sums = self.shard.sum(self.sums).tolist()  # the one sync per tick
        sums[0] /= self.shard.world  # per-rank mean losses -> the global batch's mean
        return sums

    def running_loss(self) -> float:
        """Sum of the losses since the last tick: nan or inf if any diverged."""
        return self._global()[0]

    def summary(self, step: int, n_points: int, batch: int, train_seconds: float) -> dict:
        loss, cost_ic, n_ic, cost_gc, n_gc = self._global()
        elapsed = time.perf_counter() - self.started
        row = {
            "step": step,
            "loss": loss / self.steps,
            "n_points": n_points,
            "transport_cost_ic": cost_ic / n_ic if n_ic else None,
            "transport_cost_gc": cost_gc / n_gc if n_gc else None,
            "gc_fraction": n_gc / (n_ic + n_gc),
            "step_time": elapsed / self.steps,
            "images_per_s": batch * self.steps / elapsed,
            "train_seconds": train_seconds,
            "time": time.time(),
        }
        self.reset()
        return row
