"""Pretrained initialisation: the weights an ECT run starts from (paper Table 2), read without
running any code from the file.

A run's `init` names one of:

  edm-cifar10, edm-ffhq64    EDM's pretrained pickle, from the assets cache (assets.PRETRAINED)
  path/to/network.pkl        an EDM network pickle (EDM's network-snapshot-*.pkl format)
  path/to/step-NNNNNNN.pt    a gcbench snapshot: its EMA weights
  path/to/run-directory      a finished gcbench run: its latest snapshot's EMA weights

EDM pickles are read as data by edm_pickle (no code from the file runs, allocation bounded by
the file's size), and only EDM's `EDMPrecond` around the DDPM++ `SongUNet` that the run's
network implements is accepted: the constructor arguments EDM's persistence records are
compared field by field before any weight is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import assets, checkpoint, edm_pickle
from .networks import SongUNet

# ---- EDM pickles -> flat state dicts ---------------------------------------------------------

_MAX_DEPTH = 16  # EDMPrecond > SongUNet > enc/dec > UNetBlock > Conv2d: 5 levels


def _state(obj: object, name: str) -> dict:
    if isinstance(obj, edm_pickle.Persistent):
        return obj.state
    if isinstance(obj, edm_pickle.ByReference):
        return vars(obj)
    raise ValueError(f"{name or 'the network'} is a {type(obj).__name__}, not a network module")


def _flatten(module: object, prefix: str, out: dict[str, Tensor]) -> None:
    if prefix.count(".") > _MAX_DEPTH:
        raise ValueError(f"{prefix} nests modules deeper than any EDM network")
    state = _state(module, prefix.rstrip("."))
    groups = {g: state.get(g) for g in ("_parameters", "_buffers", "_modules")}
    for group, members in groups.items():
        members = groups[group] = {} if members is None else members
        if not isinstance(members, dict) or not all(isinstance(k, str) for k in members):
            raise ValueError(f"{prefix}{group} is not a dict of names")
    for key, value in [*groups["_parameters"].items(), *groups["_buffers"].items()]:
        if value is None:  # e.g. EDM's Conv2d registers resample_filter=None when unused
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"{prefix}{key} is a {type(value).__name__}, not a tensor")
        out[f"{prefix}{key}"] = value.detach()
    for key, child in groups["_modules"].items():
        if child is not None:
            _flatten(child, f"{prefix}{key}.", out)


_DESCRIBED = ("img_resolution", "img_channels", "model_type", "model_channels", "channel_mult")
_DESCRIBED += ("num_blocks", "attn_resolutions", "augment_dim", "dropout")


def _read_edm(path: Path) -> tuple[object, dict[str, Tensor], str]:
    """The EMA network of an EDM pickle (a stand-in), its flat state, and a description."""
    try:
        data = edm_pickle.load(path.read_bytes())
    except edm_pickle.UnpicklingError as err:
        raise edm_pickle.UnpicklingError(f"{path}: {err}") from None
    if not isinstance(data, dict) or "ema" not in data:
        keys = list(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path} is not an EDM network pickle (a dict with ema, loss_fn, augment_pipe, "
            f"dataset_kwargs); it holds {keys}"
        )
    flat: dict[str, Tensor] = {}
    _flatten(data["ema"], "", flat)
    # EDM's persistence decorator keeps the constructor's kwargs: they say what the net is.
    kwargs = _state(data["ema"], "ema").get("_init_kwargs")
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    shown = ", ".join(f"{k}={_plain(kwargs[k])}" for k in _DESCRIBED if k in kwargs)
    name = getattr(data["ema"], "class_name", "network")
    return data["ema"], flat, f"EDM pickle {path} ({name}({shown}); EDM's defaults elsewhere)"


def read_edm_pickle(path: str | Path) -> dict[str, Tensor]:
    """The EMA network of an EDM pickle as a flat name -> tensor dict, EDM's names
    (`model.enc.32x32_conv.weight`), read without running code from the file."""
    return _read_edm(Path(path))[1]


# ---- the architecture: EDM's EDMPrecond around the run's DDPM++ SongUNet ---------------------

# EDM's SongUNet defaults (training/networks.py), for what its recorded kwargs leave out.
_SONGUNET_DEFAULTS = dict(
    label_dim=0,
    model_channels=128,
    channel_mult=[1, 2, 2, 2],
    channel_mult_emb=4,
    num_blocks=4,
    attn_resolutions=[16],
    embedding_type="positional",
    channel_mult_noise=1,
    encoder_type="standard",
    decoder_type="standard",
    resample_filter=[1, 1],
)
# What gcbench's SongUNet implements whatever the recipe: EDM's DDPM++ configuration
# (EDM's train.py --arch=ddpmpp), unconditional.
_DDPMPP = dict(
    label_dim=0,
    embedding_type="positional",
    channel_mult_noise=1,
    encoder_type="standard",
    decoder_type="standard",
    resample_filter=[1, 1],
)


def _plain(value: object, depth: int = 0) -> object:
    """A value from the file as plain Python, for comparing and printing (never a tensor)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)) and depth < 2 and len(value) <= 64:
        return [_plain(v, depth + 1) for v in value]
    return f"<{type(value).__name__}>"


def check_edm_network(ema: object, backbone: nn.Module, sigma_data: float = 0.5) -> None:
    """Refuse, naming each field, an EDM network that is not EDM's EDMPrecond (with the run's
    sigma_data) around a DDPM++ SongUNet of the run's shape: a VP- or VE-preconditioned net, a
    conditional one or an NCSN++ one would load its tensors and compute something else."""
    if not isinstance(backbone, SongUNet):
        raise ValueError(
            f"an EDM pickle initialises a SongUNet (network=unet), not a {type(backbone).__name__}"
        )
    state = _state(ema, "ema")
    modules = state.get("_modules")
    model = modules.get("model") if isinstance(modules, dict) else None
    kwargs = _state(model, "model").get("_init_kwargs") if model is not None else None
    if not isinstance(kwargs, dict):
        raise ValueError("the network records no constructor arguments (EDM's persistence does)")
    found = {k: _plain(v) for k, v in (_SONGUNET_DEFAULTS | kwargs).items()}
    levels = len(backbone.arch["channel_mult"])
    if isinstance(found["num_blocks"], int):  # EDM: one count for every level
        found["num_blocks"] = [found["num_blocks"]] * levels
    attn = found["attn_resolutions"]
    if isinstance(attn, list) and all(type(r) is int for r in attn):
        found["attn_resolutions"] = sorted(attn)
    found |= dict(
        preconditioner=getattr(ema, "class_name", None),
        model=getattr(model, "class_name", None),
        sigma_data=_plain(state.get("sigma_data")),
        precond_label_dim=_plain(state.get("label_dim")),
    )
    expected = backbone.arch | _DDPMPP
    expected |= dict(preconditioner="EDMPrecond", model="SongUNet", sigma_data=sigma_data)
    expected |= dict(precond_label_dim=0)
    wrong = [
        f"{field}={found.get(field)!r} in the file, {want!r} in the run's network"
        for field, want in expected.items()
        if found.get(field) != want
    ]
    if wrong:
        raise ValueError(
            "the EDM network is not the run's: " + "; ".join(wrong) + ". gcbench implements "
            "EDM's EDMPrecond around EDM's DDPM++ SongUNet (unconditional), with the recipe's "
            "resolution, channels, blocks and attention resolutions"
        )


_AUX = re.compile(r"^dec\.(\d+)x\1_aux_(norm|conv)\.")


def _check_resample_filter(name: str, f: Tensor) -> None:
    """gcbench resamples as EDM's [1, 1] filter does (outer product / sum^2: a 2x2 of 0.25);
    a network trained with another filter would load but compute something else."""
    if f.shape != (1, 1, 2, 2) or not torch.allclose(f.float(), torch.full((1, 1, 2, 2), 0.25)):
        raise ValueError(
            f"{name} is a {tuple(f.shape)} resampling filter, not EDM's [1, 1] filter (a 2x2 of "
            f"0.25): gcbench's SongUNet implements only that one (DDPM++'s)"
        )


def edm_to_gcbench(flat: dict[str, Tensor]) -> dict[str, Tensor]:
    """EDM's SongUNet names -> gcbench's networks.SongUNet names (which already follow EDM's
    submodules): strip `model.`, the output head `dec.<r>x<r>_aux_norm/conv` becomes
    `out_norm/out_conv`, and what gcbench has no counterpart for is dropped: the resample
    filters (gcbench resamples with the fixed [1, 1] filter as pooling) and map_augment (EDM's
    augmentation labels, unused at sampling). Anything else keeps its name, so that a strict
    load reports it."""
    out: dict[str, Tensor] = {}
    for name, tensor in flat.items():
        key = name.removeprefix("model.")
        if key.endswith(".resample_filter"):
            _check_resample_filter(name, tensor)
            continue
        if key.startswith("map_augment"):
            continue
        key = _AUX.sub(lambda m: f"out_{m.group(2)}.", key)
        if key in out:
            raise ValueError(f"{name} maps onto {key}, which another tensor already took")
        out[key] = tensor
    return out


# ---- gcbench snapshots and runs --------------------------------------------------------------

_NET_FIELDS = ("dataset", "network", "model_channels", "channel_mult", "num_blocks")
_NET_FIELDS += ("attn_resolutions", "mlp_hidden", "mlp_layers", "mlp_emb_channels")


def _read_snapshot(path: Path) -> tuple[dict[str, Tensor], str]:
    snap = checkpoint.load(path)
    if not isinstance(snap, dict) or not isinstance(snap.get("ema"), dict):
        raise ValueError(
            f"{path} is not a gcbench snapshot (a dict with step, net, ema, config from "
            f"`gcbench train`)"
        )
    # The EMA of networks.ConsistencyFunction: the backbone's weights under `backbone.`.
    state = {k.removeprefix("backbone."): v for k, v in snap["ema"].items()}
    config = snap.get("config") or {}
    shown = ", ".join(f"{k}={config[k]}" for k in _NET_FIELDS if k in config)
    return state, f"gcbench snapshot {path} (step {snap.get('step')}; {shown})"


def _finished_snapshot(run_dir: Path) -> Path:
    snapshot = checkpoint.find_snapshot(run_dir, "final")
    if not (run_dir / "done.json").exists():
        raise FileNotFoundError(
            f"init={run_dir} has no done.json: the pretraining run has not finished (its latest "
            f"snapshot is {snapshot.name}). Finish it first (`gcbench train` resumes it), or set "
            f"init= to one of its snapshots to start from that"
        )
    return snapshot


# ---- what init names, and loading it ---------------------------------------------------------


def _kind(init: str) -> str:
    """'asset', 'edm' (.pkl), 'snapshot' (.pt) or 'run' (a directory, perhaps not trained yet)."""
    if init in assets.PRETRAINED:
        return "asset"
    path = Path(init).expanduser()
    if path.suffix == ".pkl":
        return "edm"
    if path.suffix == ".pt":
        return "snapshot"
    if path.is_file():
        raise ValueError(
            f"init={init} is a file but neither an EDM pickle (.pkl) nor a gcbench snapshot (.pt)"
        )
    if "/" not in init and not path.exists():  # most likely a misspelt asset name
        raise ValueError(
            f"init={init!r} is not a pretrained asset ({', '.join(assets.PRETRAINED)}) nor an "
            f"existing path; name a run directory by a path with a '/' (e.g. runs/<name>)"
        )
    return "run"


def _missing_file(init: str, kind: str) -> FileNotFoundError:
    what = "EDM network pickle" if kind == "edm" else "gcbench snapshot"
    return FileNotFoundError(
        f"init={init}: no such {what}. Fix the path, or set init= to a pretrained asset "
        f"({', '.join(assets.PRETRAINED)}) or to a finished gcbench run directory"
    )


def check_init(init: str, cache: Path = assets.DEFAULT_CACHE) -> None:
    """Fail before any job is submitted if `init` cannot be loaded: an asset that is missing,
    unverified or corrupt (MissingAssetError, naming the fetch command) or a file that is not
    there (FileNotFoundError). A run directory is not checked: the workflow trains it first.
    "" (random initialisation) passes."""
    if not init:
        return
    kind = _kind(init)
    if kind == "asset":
        assets.require(init, Path(cache))
    elif kind in ("edm", "snapshot") and not Path(init).expanduser().is_file():
        raise _missing_file(init, kind)


def _compare(state: dict[str, Tensor], backbone: nn.Module, what: str) -> None:
    """Names and shapes, checked before load_state_dict so the error says what to change."""
    expected = backbone.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    misshapen = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in the network"
        for k in sorted(expected.keys() & state.keys())
        if state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or misshapen):
        return

    def listed(label: str, names: list[str]) -> str:
        more = f", ... ({len(names) - 8} more)" if len(names) > 8 else ""
        return f"\n  {len(names)} {label}: {', '.join(names[:8])}{more}" if names else ""

    raise ValueError(
        f"the weights do not fit the run's network:"
        f"{listed('missing from the file', missing)}"
        f"{listed('unexpected in the file', unexpected)}"
        f"{listed('misshapen', misshapen)}\n"
        f"The file is the {what}; the run's network config (dataset resolution, model_channels, "
        f"channel_mult, num_blocks, attn_resolutions) must match it."
    )


def load_init(
    init: str,
    backbone: nn.Module,
    cache: Path = assets.DEFAULT_CACHE,
    sigma_data: float = 0.5,
) -> str:
    """Load the weights `init` names into `backbone` (strictly: every tensor, same shapes; an
    EDM pickle also by its architecture, with `sigma_data` the run's) and return the sha256 of
    the file read, for the run's provenance."""
    if not init:
        raise ValueError("init is empty: there is nothing to load (random initialisation)")
    kind = _kind(init)
    path = Path(init).expanduser()
    if kind == "asset":
        path = assets.require(init, Path(cache))
    elif kind == "run":
        if not path.is_dir():
            raise FileNotFoundError(f"init={init}: no such run directory; train it first")
        path = _finished_snapshot(path)
    elif not path.is_file():
        raise _missing_file(init, kind)
    if kind in ("asset", "edm"):
        ema, flat, what = _read_edm(path)
        try:
            check_edm_network(ema, backbone, sigma_data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        state = edm_to_gcbench(flat)
    else:
        state, what = _read_snapshot(path)
    _compare(state, backbone, what)
    backbone.load_state_dict(state, strict=True)
    return checkpoint.sha256(path)
