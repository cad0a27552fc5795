"""Consistency training: one step (`training_step`) and one loop (`train`) for every coupling.

The coupling is injected (couplings.py); the loop never asks which one it runs. The loop
also runs ECT and its EDM pretraining (ect.py), whose steps replace `training_step`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from . import checkpoint, ect, provenance
from .assets import DEFAULT_CACHE
from .couplings import COUPLINGS, Coupling, EndpointFn, Pair
from .data import TrainingData
from .distributed import SINGLE, Shard
from .ema import update_ema
from .grids import write_grid
from .layout import DEFAULT_OUTDIR, resolve_init
from .losses import LOSSES
from .microbatch import Drawn, accumulate, chunked
from .optimizers import make_optimizer
from .progress import Progress, Scalars
from .recipes import (
    ConfigError,
    TrainConfig,
    build_network,
    config_changes,
    describe_changes,
    precision,
)
from .runtime import pick_device, set_tf32
from .schedules import interval_probs, karras_sigmas, loss_weights, num_sigma_points

DONE = "done.json"


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
    """One batch's consistency-training loss (docs/design.md#the-training-step), not backpropagated.

    i ~ p; one z per sample; (x_lo, x_hi) from the coupling;
    loss = mean(lambda_i d(f(x_hi, sigma_{i+1}), stopgrad f(x_lo, sigma_i))).
    `x` is this rank's rows of the global batch: the draws are made for the global batch and
    sliced, so that any number of ranks computes the same per-sample values.
    """
    drawn = ict_draw(
        net,
        coupling,
        loss_fn,
        x,
        sigmas,
        probs,
        weights,
        step=step,
        gen=gen,
        endpoint_fn=endpoint_fn,
        shard=shard,
    )
    return drawn.mean_loss(), drawn.pair


def ict_draw(
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
) -> Drawn:
    """The draws and the coupling of `training_step` on the whole batch; the network passes
    run later, on any rows (microbatch.py)."""
    n, rows = x.shape[0] * shard.world, shard.rows(x.shape[0] * shard.world)
    i = torch.multinomial(probs, n, replacement=True, generator=gen)[rows]
    z = torch.randn((n, *x.shape[1:]), generator=gen, device=x.device)[rows]
    u = torch.rand(n, generator=gen, device=x.device)[rows]  # picks the GC subset
    sigma_lo, sigma_hi = sigmas[i], sigmas[i + 1]
    pair = coupling(x, z, sigma_lo, sigma_hi, u, step=step, endpoint_fn=endpoint_fn)
    devices = [x.device.index or 0] if x.device.type == "cuda" else []

    def losses(r: slice) -> Tensor:
        # iCT's target is the online net itself, not an EMA teacher. Forking the RNG makes
        # both passes draw the same dropout masks.
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            target = net(pair.x_lo[r], sigma_lo[r])
        pred = net(pair.x_hi[r], sigma_hi[r])
        return weights[i[r]] * loss_fn(pred, target)

    return Drawn(pair, losses, x.shape[0])


def in_eval_mode(net: nn.Module, **kwargs) -> EndpointFn:
    """f(x, sigma) from `net` without dropout: GC endpoints are the generator's own outputs."""

    def predict(x: Tensor, sigma: Tensor) -> Tensor:
        was_training = net.training
        net.eval()
        try:
            return net(x, sigma, **kwargs)
        finally:
            net.train(was_training)

    return predict


def _check_config(run_dir: Path, c: TrainConfig, write: bool = True) -> None:
    """Write config.json (if `write`), or check that a resumed run keeps the config it started
    with. Every rank checks, so that all of them fail together before any collective."""
    path = run_dir / "config.json"
    if not path.exists():
        if write:
            checkpoint.write_json(c.to_dict(), path)
        return
    changed = config_changes(checkpoint.read_json(path), c)
    if changed:
        diff = describe_changes(changed)
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


@dataclass
class _Run:
    """What one training run holds between steps: set up by `_setup`, advanced by the loop."""

    c: TrainConfig
    run_dir: Path
    shard: Shard
    device: torch.device
    data: TrainingData
    layout: torch.memory_format | None
    net: nn.Module  # the online network
    ema: nn.Module
    model: nn.Module  # net as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    gen: torch.Generator  # sigma indices, noise, GC choices: shared by every rank
    coupling: Coupling
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    endpoint_fn: EndpointFn
    step: int = 0
    train_seconds: float = 0.0  # the training loop's wall-clock seconds
    # ... and its CPU seconds (all of the process's threads): on a shared CPU the budget that
    # does not depend on what runs beside the job (measures.py).
    cpu_seconds: float = 0.0
    saved_at: float = field(default_factory=time.perf_counter)  # last resume state

    @property
    def state_path(self) -> Path:
        return self.run_dir / checkpoint.STATE


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
    if (Path(run_dir) / DONE).exists():  # finished: nothing to do, nothing to touch
        _check_config(Path(run_dir), c, write=False)
        return "done"
    run = _setup(c, Path(run_dir), shard)
    window = _Window(run.device, shard)
    # A bar on a terminal; in a job's log file, one line per log interval.
    bar = Progress(c.total_steps, run.step, run.run_dir, enabled=progress and shard.is_main)
    scalars = Scalars(run.run_dir, enabled=c.tensorboard and shard.is_main)
    grid_points, grid = 0, None
    tick_start, tick_cpu = time.perf_counter(), time.process_time()

    finished = _finished(run, 0.0)
    while not finished:
        if shard.any(should_stop(run.step), run.device):
            run.train_seconds += time.perf_counter() - tick_start
            run.cpu_seconds += time.process_time() - tick_cpu
            _save_state(run)
            bar.close()
            scalars.close()
            return "stopped"

        # ---- batch and discretisation (iCT: the curriculum N(k) grows during training) ----
        n_points = num_sigma_points(run.step, c.total_steps, c.s0, c.s1)
        if c.objective == "ict" and n_points != grid_points:
            grid_points, grid = n_points, _sigma_grid(n_points, c, run.device)
        x = run.data.batch(run.step, c.batch_size, c.seed, run.device, shard.rows(c.batch_size))
        if run.layout is not None:
            x = x.contiguous(memory_format=run.layout)

        # ---- coupling, loss, optimizer step and EMA ----
        loss, pair = _step(run, x, grid)
        window.add(loss.detach(), pair)
        run.step += 1
        bar.update(1)

        # ---- per-tick maintenance: log, snapshot, checkpoint ----
        finished = _finished(run, time.perf_counter() - tick_start)
        # Also at every snapshot: its training seconds place it on the wall-clock axis.
        if run.step % c.log_every == 0 or run.step % c.snapshot_every == 0 or finished:
            now, cpu = time.perf_counter(), time.process_time()
            run.train_seconds += now - tick_start
            run.cpu_seconds += cpu - tick_cpu
            tick_start, tick_cpu = now, cpu
            row = _log(run, window, n_points if c.objective == "ict" else None)
            bar.logged(row, **({"N": n_points} if grid else {}))
            scalars.add(row, lr=run.optimizer.param_groups[0]["lr"])
        _save(run, window, finished)

    bar.close()
    scalars.close()
    if shard.is_main:
        # The GPU model and count belong to the budget: train_seconds on one GPU model is not
        # the same budget on another (ECT short's hour, wall-clock comparisons).
        summary = dict(step=run.step, train_seconds=run.train_seconds)
        summary |= dict(cpu_seconds=_known(run.cpu_seconds))
        summary |= dict(final_loss=_last_loss(run.run_dir), **checkpoint.run_hardware(run.run_dir))
        checkpoint.write_json(summary, run.run_dir / DONE)
        if not c.keep_state:  # done.json is written first: a crash here leaves a finished run
            checkpoint.remove_state(run.state_path)
    return "done"


def _finished(run: _Run, seconds_since_tick: float) -> bool:
    """total_steps reached, or the wall-clock cap (ECT's short run) spent. Ranks' clocks
    differ, so they agree on the cap through a collective (only when a cap is set)."""
    c = run.c
    if run.step >= c.total_steps or not c.max_train_seconds:
        return run.step >= c.total_steps
    spent = run.train_seconds + seconds_since_tick >= c.max_train_seconds
    return run.shard.any(spent, run.device)


def _setup(c: TrainConfig, run_dir: Path, shard: Shard) -> _Run:
    """Config check, device, data, then model, EMA, optimizer and RNGs: fresh, or restored
    from the resume state."""
    if shard.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(run_dir, c, write=shard.is_main)
    device = pick_device(c.device)
    # TF32 is a recorded config field: it changes the numbers on Ampere and later GPUs.
    set_tf32(c.tf32)
    data = TrainingData(c.dataset, c.data_dir)
    channels_last = device.type == "cuda" and c.channels_last and len(data.shape) == 3
    layout = torch.channels_last if channels_last else None

    torch.manual_seed(c.seed)  # weight init and the dropout stream
    net = build_network(c).to(device, memory_format=layout).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    optimizer = make_optimizer(c, net.parameters())
    gen = torch.Generator(device).manual_seed(c.seed)
    if shard.rank:  # other dropout masks on other ranks; rank 0 matches a 1-process run
        torch.manual_seed(c.seed + 1_000_003 * shard.rank)
    run = _Run(
        c=c,
        run_dir=run_dir,
        shard=shard,
        device=device,
        data=data,
        layout=layout,
        net=net,
        ema=ema,
        model=net,
        optimizer=optimizer,
        gen=gen,
        coupling=COUPLINGS[c.coupling](c.mu, c.gc_start_step),
        loss_fn=LOSSES[c.loss],
        # Without gradient, but as large as a training pass: also split into micro-batches.
        endpoint_fn=chunked(
            in_eval_mode(
                ema if c.endpoint == "ema" else net,
                **(ect.DENOISER if c.objective == "ect" else {}),
            ),
            c.batch_per_gpu,
        ),
    )
    log = print if shard.is_main else lambda message: None
    state = checkpoint.load_state(run.state_path, log=log)
    init = {}
    if state is not None:
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], gen, device, shard)
        run.step, run.train_seconds = state["step"], state["train_seconds"]
        # A state saved before CPU time was recorded: the count restarts, so it is partial.
        run.cpu_seconds = state.get("cpu_seconds", math.nan)
    elif c.init not in ("", "random"):  # pretrained weights for the online net and the EMA
        from .pretrained import load_init

        cache = Path(os.environ.get("GCBENCH_CACHE", DEFAULT_CACHE))  # as `gcbench check`
        path = resolve_init(c.init, DEFAULT_OUTDIR)  # a `run:` init outside a study
        digest = load_init(path, net.backbone, cache, sigma_data=net.sigma_data)
        init = dict(init=c.init, init_sha256=digest)
        ema.load_state_dict(net.state_dict())
    if shard.is_main:
        event = "resume" if run.step else "start"
        checkpoint.append_jsonl(
            provenance.collect(
                event=event,
                step=run.step,
                seed=c.seed,
                world_size=shard.world,
                precision=precision(c),
                **init,
            ),
            run_dir / checkpoint.PROVENANCE,
        )
    run.model = _compiled(_data_parallel(net, shard, device), c)
    return run


def _step(
    run: _Run, x: Tensor, grid: tuple[Tensor, Tensor, Tensor] | None
) -> tuple[Tensor, Pair | None]:
    """One optimizer step on batch x: coupling and loss (in micro-batches of batch_per_gpu
    rows, microbatch.py), backward, update, EMA."""
    c = run.c

    def autocast():
        return torch.autocast(run.device.type, torch.bfloat16, enabled=c.bf16)

    with autocast():
        drawn = _draw(run, x, grid)  # everything random, on the whole batch
    run.optimizer.zero_grad(set_to_none=True)
    loss = accumulate(run.model, drawn, c.batch_per_gpu, autocast)
    if c.objective == "ect":  # as ECT: a non-finite gradient entry becomes a finite one
        for p in run.net.parameters():
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    if c.lr_rampup_steps:  # a function of the step alone, so a resumed run continues it exactly
        for group in run.optimizer.param_groups:
            group["lr"] = c.lr * min(1.0, (run.step + 1) / c.lr_rampup_steps)
    run.optimizer.step()
    update_ema(run.ema, run.net, run.step, c.ema_beta, c.ema_every, c.ema_warmup)
    return loss, drawn.pair


def _draw(run: _Run, x: Tensor, grid) -> Drawn:
    """The batch's draws under the config's objective: the pair it trains on, and its losses."""
    c, common = run.c, dict(gen=run.gen, shard=run.shard)
    if c.objective == "ict":
        return ict_draw(
            run.model,
            run.coupling,
            run.loss_fn,
            x,
            *grid,
            step=run.step,
            endpoint_fn=run.endpoint_fn,
            **common,
        )
    if c.objective == "ect":
        return ect.ect_draw(
            run.model,
            run.coupling,
            x,
            step=run.step,
            endpoint_fn=run.endpoint_fn,
            p_mean=c.p_mean,
            p_std=c.p_std,
            q=c.ect_q,
            stage_steps=c.ect_stage_steps,
            c=c.ect_c,
            **common,
        )
    # Denoising pairs no noise with an endpoint: no pair, no transport cost.
    return ect.denoising_draw(
        run.model, x, p_mean=c.p_mean, p_std=c.p_std, sigma_data=c.sigma_data, **common
    )


def _log(run: _Run, window: _Window, n_points: int) -> dict:
    """The tick's metrics row (reduced over ranks), appended to metrics.jsonl by rank 0."""
    row = window.summary(
        run.step, n_points, run.c.batch_size, run.train_seconds, _known(run.cpu_seconds)
    )
    _stop_if_not_finite(run, row["loss"])
    if run.shard.is_main:
        checkpoint.append_jsonl(row, run.run_dir / "metrics.jsonl")
    return row


def _save(run: _Run, window: _Window, last: bool) -> None:
    """The snapshot (EMA and online weights, for the FID curve) and the resume state, each on
    its own schedule and at the last step."""
    c, step = run.c, run.step
    snapshot = step % c.snapshot_every == 0 or last
    state = step % c.checkpoint_every == 0 or last or _state_due(run)
    if snapshot or state:
        _stop_if_not_finite(run, window.running_loss())  # never save a diverged model
    if snapshot and run.shard.is_main:
        snap = dict(
            step=step, net=run.net.state_dict(), ema=run.ema.state_dict(), config=c.to_dict()
        )
        checkpoint.save(snap, checkpoint.snapshot_path(run.run_dir, step))
        if c.sample_grid:
            write_grid(run.ema, c, step, run.run_dir, run.device)
    if state:
        _save_state(run)


def _state_due(run: _Run) -> bool:
    """checkpoint_minutes of training since the last resume state, looked at on log ticks: a
    hard kill loses at most that plus one tick. Ranks' clocks differ, so they agree through
    a collective, once per tick rather than once per step (a device sync)."""
    minutes = run.c.checkpoint_minutes
    if not minutes or run.step % run.c.log_every:
        return False
    return run.shard.any(time.perf_counter() - run.saved_at >= 60 * minutes, run.device)


def _save_state(run: _Run) -> None:
    """The resume state: net, EMA, optimizer, RNGs, counters and config."""
    rng = _rng_state(run.gen, run.device, run.shard)  # a collective: every rank takes part
    run.saved_at = time.perf_counter()
    if not run.shard.is_main:
        return
    checkpoint.save_state(
        dict(
            net=run.net.state_dict(),
            ema=run.ema.state_dict(),
            optimizer=run.optimizer.state_dict(),
            rng=rng,
            step=run.step,
            train_seconds=run.train_seconds,
            cpu_seconds=run.cpu_seconds,
            config=run.c.to_dict(),
        ),
        run.state_path,
    )


def _stop_if_not_finite(run: _Run, loss: float) -> None:
    if math.isfinite(loss):  # the loss is reduced over ranks: all ranks stop together
        return
    good = checkpoint.load_state(run.state_path, log=lambda message: None)
    kept = (
        f"the last good state (step {good['step']}) is kept in {run.state_path}"
        if good
        else "no state was saved before it, so a rerun starts from step 0"
    )
    raise NonFiniteLossError(
        f"loss is {loss} at step {run.step}; {kept}. Lower lr or check the data, then "
        f"rerun to resume."
    )


def _data_parallel(net: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """DDP over the ranks (gradients averaged: the global batch's mean loss); the bare net
    with one rank. The EMA and the GC endpoint network stay outside DDP."""
    if shard.world == 1:
        return net
    ids = [device.index or 0] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def _compiled(model: nn.Module, c: TrainConfig) -> nn.Module:
    return torch.compile(model) if c.compile else model


def _known(seconds: float) -> float | None:
    """None for a CPU count that is not the whole run's (nan: resumed from an older state)."""
    return None if math.isnan(seconds) else seconds


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
        self.started, self.started_cpu = time.perf_counter(), time.process_time()

    def add(self, loss: Tensor, pair: Pair | None) -> None:
        self.steps += 1
        if pair is None:  # EDM pretraining: a loss, no coupling
            self.sums[0] += loss.double()
            return
        cost = pair.transport_cost().double()
        gc = pair.is_gc.double()
        self.sums += torch.stack(
            [loss.double(), (cost * (1 - gc)).sum(), (1 - gc).sum(), (cost * gc).sum(), gc.sum()]
        )

    def _global(self) -> list[float]:
        sums = self.shard.sum(self.sums).tolist()  # the one sync per tick
        sums[0] /= self.shard.world  # per-rank mean losses -> the global batch's mean
        return sums

    def running_loss(self) -> float:
        """Sum of the losses since the last tick: nan or inf if any diverged."""
        return self._global()[0]

    def summary(
        self,
        step: int,
        n_points: int,
        batch: int,
        train_seconds: float,
        cpu_seconds: float | None,
    ) -> dict:
        loss, cost_ic, n_ic, cost_gc, n_gc = self._global()
        elapsed = time.perf_counter() - self.started
        elapsed_cpu = time.process_time() - self.started_cpu
        row = {
            "step": step,
            "loss": loss / self.steps,
            "n_points": n_points,
            "transport_cost_ic": cost_ic / n_ic if n_ic else None,
            "transport_cost_gc": cost_gc / n_gc if n_gc else None,
            "gc_fraction": n_gc / (n_ic + n_gc) if n_ic + n_gc else None,
            "step_time": elapsed / self.steps,  # wall-clock seconds per step
            "step_cpu_time": elapsed_cpu / self.steps,  # CPU seconds per step, all threads
            "images_per_s": batch * self.steps / elapsed,
            "train_seconds": train_seconds,
            "cpu_seconds": cpu_seconds,
            "time": time.time(),
        }
        self.reset()
        return row
