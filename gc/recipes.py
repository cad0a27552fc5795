"""Named, validated training configurations.

A recipe is `<dataset>-<coupling>`: the paper's four datasets (Table 1 hyper-parameters; LSUN
Church 64 uses CelebA 64's, since its config was not released) and the two embedded ones, each
with the couplings ic, ot, gc (mu=0.5) and gc_ot. `resolve(name, ["key=value", ...])` applies
overrides and validates once; the rest of the code receives a frozen `TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

from .catalog import COUPLINGS, DATASETS, LOSSES

OPTIMIZERS = ("lion", "adam", "radam")
# ict: consistency training on the iCT grid (Table 1). ect: Easy Consistency Tuning of a
# pretrained denoiser (Table 2, ect.py). edm: EDM's denoising loss, to pretrain that denoiser.
OBJECTIVES = ("ict", "ect", "edm")
ENDPOINTS = ("ema", "online")
NETWORKS = ("unet", "mlp")


class ConfigError(ValueError):
    """A configuration a run cannot start from; the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    recipe: str = "custom"
    objective: str = "ict"
    # Coupling (couplings.py). mu is the fraction of GC samples in each batch.
    coupling: str = "ic"
    mu: float = 0.0
    endpoint: str = "ema"  # which net predicts GC endpoints: the EMA (paper default) or online
    gc_start_step: int = 0  # GC off before this step (the official code's unused option)
    # Network (networks.py); num_blocks and dropout are per resolution level.
    network: str = "unet"
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_blocks: tuple[int, ...] = (3, 3, 3)
    attn_resolutions: tuple[int, ...] = ()
    dropout: tuple[float, ...] = (0.0, 0.0, 0.0)
    mlp_hidden: int = 128
    mlp_layers: int = 3
    mlp_emb_channels: int = 32
    # Optimisation: Lion, betas (0.9, 0.99), no weight decay, no warm-up, fp32 (paper).
    batch_size: int = 512
    # Rows per forward/backward pass on each GPU (gradient accumulation, microbatch.py); 0: the
    # GPU's whole share of batch_size at once. Changes the float summation order, not the math.
    batch_per_gpu: int = 0
    total_steps: int = 100_000
    lr: float = 1e-4
    optimizer: str = "lion"
    beta1: float = 0.9
    beta2: float = 0.99
    ema_beta: float = 0.9999
    ema_every: int = 5
    # Consistency training (schedules.py, losses.py).
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    s0: int = 10
    s1: int = 1280
    p_mean: float = -1.1
    p_std: float = 2.0
    loss: str = "pseudo_huber"
    # ECT (ect.py): r = t (1 - n(t) / q^(stage+1)), the stage advancing every ect_stage_steps
    # (0: never, ECT's short run); ect_c is the pseudo-Huber c of its loss (0 on CIFAR-10).
    ect_q: float = 2.0
    ect_stage_steps: int = 25_000
    ect_c: float = 0.0
    # Initial weights (pretrained.load_init): an EDM pickle asset (edm-cifar10, edm-ffhq64), a
    # .pkl or gcbench snapshot path, or a gcbench run directory (its final EMA). "" or
    # "random": the network's own initialisation (ECT asks for "random" explicitly).
    init: str = ""
    ema_warmup: bool = True  # iCT's EMA ramps its decay up; ECT's is constant from step 0
    lr_rampup_steps: int = 0  # linear lr warm-up (EDM pretraining)
    max_train_seconds: float = 0.0  # stop early once training took this long (0: no cap)
    # Bookkeeping.
    seed: int = 0
    log_every: int = 100
    snapshot_every: int = 10_000
    checkpoint_every: int = 1_000
    # Also save the resume state at the first log tick after this many minutes of training
    # since the last save (0: off), so that a hard kill (SIGKILL, node failure) loses at most
    # this much work plus one tick.
    checkpoint_minutes: float = 30.0
    data_dir: str = "data"
    device: str = "auto"
    # Also write the logged scalars as TensorBoard event files in RUN_DIR/tensorboard (needs
    # the `tensorboard` extra); metrics.jsonl is written either way.
    tensorboard: bool = False
    # Samples drawn at every snapshot, from the same noise for every snapshot, seed and variant,
    # into RUN_DIR/samples/step-NNNNNNN.png (grids.py); 0: none.
    sample_grid: int = 64
    # GPU speed (CUDA only). channels_last changes the memory layout, not the arithmetic; TF32,
    # bf16 autocast and torch.compile change the numbers and are off by default (the paper
    # trained in fp32).
    tf32: bool = False
    channels_last: bool = True
    bf16: bool = False
    compile: bool = False
    # A finished run keeps its snapshots (the curve, the final weights) and drops its resume
    # state (net, EMA and optimizer twice over: state.pt and state.prev.pt) unless this is set.
    keep_state: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v, tuple) else v for f, v in self._items()}

    def _items(self):
        return ((f, getattr(self, f.name)) for f in dataclasses.fields(self))


def _nearest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.4)
    return f"; did you mean '{close[0]}'?" if close else ""


def _one_of(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(
            f"unknown {name} '{value}'{_nearest(value, choices)} Valid: {', '.join(choices)}"
        )


def _validate(c: TrainConfig) -> None:
    _one_of("dataset", c.dataset, DATASETS)
    _one_of("objective", c.objective, OBJECTIVES)
    _one_of("coupling", c.coupling, COUPLINGS)
    _one_of("endpoint", c.endpoint, ENDPOINTS)
    _one_of("optimizer", c.optimizer, OPTIMIZERS)
    _one_of("loss", c.loss, LOSSES)
    _one_of("network", c.network, NETWORKS)
    if not 0.0 <= c.mu <= 1.0:
        raise ConfigError(f"mu={c.mu} is outside [0, 1]: mu is the fraction of GC samples")
    if c.mu > 0 and not c.coupling.startswith("gc"):
        raise ConfigError(f"mu={c.mu} has no effect with coupling={c.coupling}; use coupling=gc")
    for key in ("total_steps", "batch_size", "log_every", "snapshot_every", "checkpoint_every"):
        if getattr(c, key) <= 0:
            raise ConfigError(f"{key}={getattr(c, key)} must be a positive integer")
    for key in ("lr", "sigma_min", "sigma_data", "rho", "p_std"):
        if not getattr(c, key) > 0:
            raise ConfigError(f"{key}={getattr(c, key)} must be positive")
    if not c.sigma_min < c.sigma_max:
        raise ConfigError(f"sigma_min={c.sigma_min} must be below sigma_max={c.sigma_max}")
    if not 1 <= c.s0 <= c.s1:
        raise ConfigError(f"need 1 <= s0 <= s1, got s0={c.s0}, s1={c.s1}")
    if not 0 < c.ema_beta < 1 or c.ema_every < 1:
        raise ConfigError(
            f"need 0 < ema_beta < 1 and ema_every >= 1, got {c.ema_beta}, {c.ema_every}"
        )
    if c.objective != "ict" and c.coupling in ("ot", "gc_ot"):
        raise ConfigError(f"coupling={c.coupling} is built for objective=ict; use ic or gc")
    if c.objective == "ect" and not c.init:
        raise ConfigError(
            "objective=ect fine-tunes a pretrained denoiser: set init= to an EDM pickle asset "
            "(edm-cifar10, edm-ffhq64), a .pkl or gcbench snapshot, or a finished pretraining "
            "run directory; init=random tunes from random weights (tests only)"
        )
    if c.objective == "edm" and c.coupling != "ic":
        raise ConfigError("objective=edm pretrains a denoiser: it takes coupling=ic")
    if not c.ect_q > 1 or c.ect_stage_steps < 0 or c.ect_c < 0:
        raise ConfigError(
            f"need ect_q > 1, ect_stage_steps >= 0 and ect_c >= 0, got {c.ect_q}, "
            f"{c.ect_stage_steps}, {c.ect_c}"
        )
    if c.max_train_seconds < 0 or c.lr_rampup_steps < 0:
        raise ConfigError("max_train_seconds and lr_rampup_steps must be >= 0")
    if c.batch_per_gpu < 0 or c.checkpoint_minutes < 0:
        raise ConfigError(
            f"batch_per_gpu={c.batch_per_gpu} and checkpoint_minutes={c.checkpoint_minutes} "
            f"must be >= 0 (0: off)"
        )
    if c.gc_start_step < 0:
        raise ConfigError(f"gc_start_step={c.gc_start_step} must be >= 0")
    image = len(DATASETS[c.dataset].shape) == 3
    if not image and c.network != "mlp":
        raise ConfigError(f"dataset {c.dataset} holds points, not images: it needs network=mlp")
    levels = len(c.channel_mult)
    for key in ("num_blocks", "dropout"):
        if len(getattr(c, key)) != levels:
            raise ConfigError(
                f"{key}={list(getattr(c, key))} has {len(getattr(c, key))} entries but "
                f"channel_mult={list(c.channel_mult)} has {levels} levels: give one per level "
                f"or a single value"
            )
    if any(not 0 <= p < 1 for p in c.dropout):
        raise ConfigError(f"dropout={list(c.dropout)}: each rate must lie in [0, 1)")
    if c.network == "mlp" and len(set(c.dropout)) > 1:
        raise ConfigError(
            f"dropout={list(c.dropout)}: the MLP has no resolution levels; give one rate"
        )
    if c.sample_grid < 0:
        raise ConfigError(f"sample_grid={c.sample_grid} must be >= 0 (0: no sample pictures)")
    for key in ("mlp_hidden", "mlp_layers", "mlp_emb_channels"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{key}={getattr(c, key)} must be a positive integer")
    if image and DATASETS[c.dataset].shape[-1] % 2 ** (levels - 1):
        raise ConfigError(f"{levels} levels halve {c.dataset}'s resolution too often")
    if not (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:")):
        raise ConfigError(f"device='{c.device}': use auto, cpu, cuda or cuda:N")


# ---- recipes ----------------------------------------------------------------------------------

_PAPER = {
    "cifar10": dict(
        batch_size=512,
        total_steps=100_000,
        lr=1e-4,
        channel_mult=(1, 2, 2),
        num_blocks=(3, 3, 3),
        attn_resolutions=(),
        dropout=(0.3, 0.3, 0.3),
        snapshot_every=10_000,
    ),
    "imagenet32": dict(
        batch_size=512,
        total_steps=150_000,
        lr=8e-5,
        channel_mult=(1, 1, 2),
        num_blocks=(3, 5, 7),
        attn_resolutions=(16,),
        dropout=(0.0, 0.2, 0.2),
        snapshot_every=10_000,
    ),
    "celeba64": dict(
        batch_size=128,
        total_steps=150_000,
        lr=8e-5,
        channel_mult=(1, 2, 2, 2),
        num_blocks=(3, 3, 4, 5),
        attn_resolutions=(),
        dropout=(0.0, 0.0, 0.2, 0.2),
        snapshot_every=10_000,
    ),
}
_PAPER["lsun_church64"] = _PAPER["celeba64"]

_EMBEDDED = {
    # Sized for a 2-core CPU (docs/design.md#the-embedded-default): an MLP on the flattened
    # 8x8 image learns in seconds where the UNet takes minutes. `network=unet` gives the
    # 247k-parameter UNet below (16 channels, mult (1, 2), 2 blocks).
    "digits8": dict(
        network="mlp",
        mlp_hidden=512,
        mlp_layers=4,
        mlp_emb_channels=64,
        batch_size=128,
        total_steps=3_000,
        lr=1e-4,
        model_channels=16,
        channel_mult=(1, 2),
        num_blocks=(2, 2),
        attn_resolutions=(),
        dropout=(0.0, 0.0),
        s1=160,
        log_every=50,
        snapshot_every=500,
        checkpoint_every=500,
    ),
    # The paper's toy (section 5.1): sigma_max=5, s1=100, squared L2, an MLP.
    "toy2d": dict(
        network="mlp",
        batch_size=256,
        total_steps=2_000,
        lr=1e-3,
        optimizer="adam",
        beta2=0.999,
        sigma_max=5.0,
        s1=100,
        loss="l2",
        channel_mult=(1,),
        num_blocks=(1,),
        dropout=(0.0,),
        log_every=50,
        snapshot_every=500,
        checkpoint_every=500,
    ),
}


# ---- ECT (Table 2): Easy Consistency Tuning of a pretrained EDM denoiser (docs/ect.md) -----------
# ECT's CIFAR-10 hyper-parameters; GC takes mu = 0.3 (the paper's best) and keeps ECT's dropout
# 0.2 in both arms. `long`: q = 2, a stage every 25k steps (100k steps end in stage 3). `short`:
# q = 256, stages never advance, EMA 0.9993, stopped at one hour of training.
_ECT_BASE = dict(
    objective="ect",
    model_channels=128,
    num_blocks=(4,),
    attn_resolutions=(16,),
    dropout=(0.2,),
    batch_size=128,
    total_steps=100_000,
    optimizer="radam",
    lr=1e-4,
    beta2=0.999,
    ema_beta=0.9999,
    ema_every=1,
    ema_warmup=False,
    sigma_min=0.003,  # the consistency shift, applied in sampling only
    ect_q=2.0,
    ect_stage_steps=25_000,
    ect_c=0.0,
    snapshot_every=10_000,
)
# ECT's 1-hour script (run_ecm_1hour.sh) sets 200k iterations and is read at about one A100-hour.
# `_ect_short`: the budget is max_train_seconds of training on the GPUs the run records (done.json:
# gpu, gpu_count), each arm its own hour (GC's extra cost per step is charged to it); arms on
# other GPUs are never paired. `_ect_short_steps`, for mixed clusters: the same schedule (it
# never depends on the run's length) for total_steps, by default ECT's scripted 200k; set it to
# one hour's steps on the reference GPU, measured once with
# `benchmarks/gpu_throughput.py --recipe cifar10_ect_short` (README, "The ECT setting").
_ECT_SHORT = dict(ect_q=256.0, ect_stage_steps=0, ema_beta=0.9993, max_train_seconds=3600.0)
_ECT_SHORT |= dict(total_steps=200_000, snapshot_every=2_000)
_ECT_NETS = {
    # EDM's DDPM++ networks: 55 732 739 and 61 804 419 parameters.
    "cifar10": dict(dataset="cifar10", init="edm-cifar10", channel_mult=(2, 2, 2)),
    # No ECT recipe exists for FFHQ 64: CIFAR-10's, on EDM's FFHQ network (unconfirmed).
    "ffhq64": dict(dataset="ffhq64", init="edm-ffhq64", channel_mult=(1, 2, 2, 2)),
}
_ECT = {}
for _name, _net in _ECT_NETS.items():
    _ECT[f"{_name}_ect_long"] = _ECT_BASE | _net
    _ECT[f"{_name}_ect_short"] = _ECT_BASE | _net | _ECT_SHORT
    _ECT[f"{_name}_ect_short_steps"] = _ECT[f"{_name}_ect_short"] | dict(max_train_seconds=0.0)

# The embedded analogue on digits: an EDM denoiser pretrained by `digits8_edm-ic` (EDM's loss
# and noise levels, Adam with an lr ramp), then ECT-tuned from it (the study sets init= to the
# pretraining run). The EMA betas shrink with the runs: 0.9999^50 = 0.995 keeps the long run's
# half-life as a share of a run 50x shorter; 0.993 for the short one.
_DIGITS_NET = {k: _EMBEDDED["digits8"][k] for k in ("network", "mlp_hidden", "mlp_layers")}
_DIGITS_NET |= dict(mlp_emb_channels=64, channel_mult=(1, 2), num_blocks=(2,), log_every=50)
_ECT["digits8_edm"] = _DIGITS_NET | dict(
    dataset="digits8",
    objective="edm",
    dropout=(0.1,),
    batch_size=128,
    total_steps=4_000,
    optimizer="adam",
    lr=1e-3,
    beta2=0.999,
    lr_rampup_steps=200,
    ema_beta=0.999,
    ema_every=1,
    p_mean=-1.2,
    p_std=1.2,
    snapshot_every=1_000,
    checkpoint_every=1_000,
)
# By default from the embedded study's denoiser (workflow/config/ect_digits.yaml trains it).
_DIGITS_ECT = _ECT_BASE | _DIGITS_NET | dict(dataset="digits8", dropout=(0.2,))
_DIGITS_ECT |= dict(init="run:digits8_pretrain/denoiser/s0")
_DIGITS_ECT |= dict(total_steps=2_000, ect_stage_steps=500, ema_beta=0.995)
_DIGITS_ECT |= dict(snapshot_every=200, checkpoint_every=500)
_ECT["digits8_ect_long"] = _DIGITS_ECT
_ECT["digits8_ect_short"] = _DIGITS_ECT | dict(
    ect_q=256.0, ect_stage_steps=0, ema_beta=0.993, total_steps=600, snapshot_every=100
)


# iCT-GC: the paper's mu (Tables 1 and 3), the fraction of GC samples in a batch.
GC_MU = 0.5
# ECT-GC: the paper's best mu. Which net predicts the endpoint the paper does not say; the
# default is chosen from the embedded analogue (README, "The ECT setting").
ECT_MU = 0.3
ECT_ENDPOINT = "ema"


def _with_coupling(base: dict, coupling: str) -> dict:
    gc = coupling.startswith("gc")
    if base.get("objective", "ict") != "ict":  # ECT: mu = 0.3, dropout kept in both arms
        return dict(base, coupling=coupling, mu=ECT_MU if gc else 0.0, endpoint=ECT_ENDPOINT)
    out = dict(base, coupling=coupling, mu=GC_MU if gc else 0.0)
    if gc:  # the paper trains GC without dropout (docs/design.md#paper-setups)
        out["dropout"] = tuple(0.0 for _ in base["dropout"])
    return out


def _couplings(base: dict) -> tuple[str, ...]:
    objective = base.get("objective", "ict")
    return COUPLINGS if objective == "ict" else ("ic",) if objective == "edm" else ("ic", "gc")


RECIPES: dict[str, dict] = {
    f"{name}-{c}": dict(_with_coupling(base, c), recipe=f"{name}-{c}")
    | {"dataset": base.get("dataset", name)}
    for name, base in {**_PAPER, **_EMBEDDED, **_ECT}.items()
    for c in _couplings(base)
}

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _parse_value(key: str, text: str, current):
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(current, tuple):
            element = type(current[0]) if current else int
            return tuple(element(v) for v in text.replace("[", "").replace("]", "").split(",") if v)
        return type(current)(text)
    except ValueError:
        raise ConfigError(
            f"cannot read {key}={text!r}: expected {type(current).__name__} like {current!r}"
        ) from None


def parse_overrides(pairs: list[str], base: dict) -> dict:
    """['mu=0.3', 'channel_mult=1,2'] -> typed values, checked against TrainConfig's fields."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not key=value (e.g. --set mu=0.3)")
        key, text = pair.split("=", 1)
        key = key.strip()
        if key not in _FIELDS or key == "recipe":
            valid = [k for k in _FIELDS if k != "recipe"]
            raise ConfigError(f"unknown key '{key}'{_nearest(key, valid)}")
        current = base.get(key, _FIELDS[key].default)
        out[key] = _parse_value(key, text.strip(), current)
    return out


def resolve(recipe: str, overrides: list[str] = ()) -> TrainConfig:
    """The recipe's config with `key=value` overrides applied, validated."""
    if recipe not in RECIPES:
        raise ConfigError(
            f"unknown recipe '{recipe}'{_nearest(recipe, RECIPES)} See `gcbench recipes`."
        )
    base = RECIPES[recipe]
    values = {**base, **parse_overrides(list(overrides), base)}
    levels = len(values.get("channel_mult", _FIELDS["channel_mult"].default))
    for key in ("num_blocks", "dropout"):
        # One value, or the same value at every level, applies to however many levels there are.
        per_level = values.get(key, _FIELDS[key].default)
        if len(set(per_level)) == 1:
            values[key] = per_level[:1] * levels
    return TrainConfig(**values)


def upgrade_config(values: dict) -> dict:
    """A run's config.json in today's field names. Runs written before the rename call the
    coupling `variant`, the study's word for a run's folder."""
    values = dict(values)
    if "variant" in values and "coupling" not in values:
        values["coupling"] = values.pop("variant")
    return values


# Fields that say where or how a run executes, not what it computes.
# batch_per_gpu and the GPU count change the float summation order only.
NOT_COMPUTED = (
    *("device", "keep_state", "tensorboard", "sample_grid"),
    *("batch_per_gpu", "checkpoint_minutes"),
)


def config_changes(recorded: dict, c: TrainConfig) -> dict[str, tuple]:
    """{field: (recorded, new)} for each field of `c` that differs from a run's recorded
    config.json. A field added after the run started, at its default, computes what the run
    computed, so it is no change."""
    old = upgrade_config(recorded)
    defaults = {  # as to_dict writes them (no instance: a default alone may not validate)
        f.name: list(f.default) if isinstance(f.default, tuple) else f.default
        for f in dataclasses.fields(TrainConfig)
    }
    return {
        k: (old.get(k), v)
        for k, v in c.to_dict().items()
        if k not in NOT_COMPUTED and old.get(k, defaults[k]) != v
    }


def describe_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())


def from_dict(values: dict) -> TrainConfig:
    """Inverse of TrainConfig.to_dict (lists back to tuples); accepts older field names."""
    values = upgrade_config(values)
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def precision(c: TrainConfig) -> str:
    """The arithmetic the training runs in: bf16 autocast, TF32 matmuls, or plain fp32."""
    return "bf16" if c.bf16 else "tf32" if c.tf32 else "fp32"


def build_network(c: TrainConfig):
    """The consistency function f(x, sigma) of a config (networks.ConsistencyFunction)."""
    from .networks import MLP, ConsistencyFunction, SongUNet

    shape = DATASETS[c.dataset].shape
    if c.network == "mlp":
        backbone = MLP(
            shape,
            hidden=c.mlp_hidden,
            layers=c.mlp_layers,
            emb_channels=c.mlp_emb_channels,
            dropout=c.dropout[0],
        )
    else:
        backbone = SongUNet(
            resolution=shape[-1],
            in_channels=shape[0],
            out_channels=shape[0],
            model_channels=c.model_channels,
            channel_mult=c.channel_mult,
            num_blocks=c.num_blocks,
            attn_resolutions=c.attn_resolutions,
            dropout=c.dropout,
        )
    return ConsistencyFunction(backbone, sigma_min=c.sigma_min, sigma_data=c.sigma_data)


def parameter_count(c: TrainConfig) -> int:
    import torch

    from .networks import count_parameters

    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return count_parameters(build_network(c))


def describe_recipes() -> list[dict]:
    rows = []
    for name in RECIPES:
        c = resolve(name)
        rows.append(
            dict(
                name=name,
                dataset=c.dataset,
                coupling=c.coupling,
                mu=c.mu,
                parameters=parameter_count(c),
            )
        )
    return rows
