"""Pretrained initialisation: the weights an ECT run starts from (paper Table 2), read without
running any code from the file.

A run's `init` names one of:

  edm-cifar10, edm-ffhq64    EDM's pretrained pickle, from the assets cache (assets.PRETRAINED)
  path/to/network.pkl        an EDM network pickle (EDM's network-snapshot-*.pkl format)
  path/to/step-NNNNNNN.pt    a gcbench snapshot: its EMA weights
  path/to/run-directory      a finished gcbench run: its latest snapshot's EMA weights

EDM pickles store every network object as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` carries the module's
source code, which unpickling normally `exec`s. Here a restricted unpickler maps that call to a
passive stand-in that keeps only `meta["state"]` (the object's __dict__), admits the few globals
that tensors, containers and numpy scalars need, and refuses every other global by name. The
weights are then read off the stand-ins' `_parameters` / `_buffers` / `_modules`.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import assets, checkpoint

# ---- stand-ins: objects that hold data and run nothing -------------------------------------


class _Persistent:
    """An EDM persistent object (EDMPrecond, SongUNet, UNetBlock, EDMLoss, ...): its class name
    and its __dict__, as pickled. The class's source in the pickle is never run."""

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state


class _Frozen(type):
    """Metaclass of the stand-ins a pickle can name: a pickle's BUILD opcode may set attributes
    on any object it holds, and must not be able to change these classes for the process."""

    def __setattr__(cls, name: str, value: object) -> None:
        raise pickle.UnpicklingError(f"refusing to set {name} on {cls.__name__}")


class _ByReference(metaclass=_Frozen):
    """Base of the stand-ins for classes the pickle names by reference (torch's ModuleDict).
    Unpickling makes one with __new__ and fills its __dict__: no method of the real class runs."""


class _EasyDict(dict, metaclass=_Frozen):
    """Stand-in for dnnlib.util.EasyDict: a dict, without the attribute access."""


_STAND_INS: dict[tuple[str, str], type] = {
    ("torch.nn.modules.container", "ModuleDict"): type("ModuleDict", (_ByReference,), {}),
    ("dnnlib.util", "EasyDict"): _EasyDict,
}
_STAND_IN_TYPES = tuple(_STAND_INS.values())


def _sealed(fn):
    """`fn` as an object without attributes to set: BUILD could otherwise change a function's
    __defaults__ (torch's own rebuild functions included) for the rest of the process."""
    return type(fn.__name__, (), {"__slots__": (), "__call__": staticmethod(fn)})()


def _reconstruct_persistent_obj(meta: dict) -> _Persistent:
    # EDM's version would exec(meta["module_src"]); only the state is kept.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("not an EDM persistent class object (meta['type'] != 'class')")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"EDM persistent object with a {type(state).__name__} state")
    return _Persistent(str(meta.get("class_name")), state)


def _check_stand_in(cls: object, caller: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, _STAND_IN_TYPES)):
        raise pickle.UnpicklingError(f"refusing {caller} of {cls!r}: only stand-in classes")


def _reconstructor(cls: type, base: type, state: object) -> object:
    # Protocols 0 and 1 build objects this way; allowed for stand-ins only.
    _check_stand_in(cls, "copyreg._reconstructor")
    if base not in (object, dict):
        raise pickle.UnpicklingError(f"refusing copyreg._reconstructor with base {base!r}")
    return copyreg._reconstructor(cls, base, state)


def _newobj(cls: type, *args: object) -> object:
    _check_stand_in(cls, "copyreg.__newobj__")
    return cls.__new__(cls)


def _load_from_bytes(data: bytes) -> object:
    # torch pickles each storage as torch.save bytes (legacy format); torch's own
    # _load_from_bytes reads them with weights_only=False, this one with the safe unpickler.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_NUMPY_SCALAR = np.float64(0).__reduce__()[0]  # numpy's `scalar`, whichever module it lives in


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> np.generic:
    # EDM's UNetBlock keeps skip_scale = np.sqrt(0.5): a float64 scalar. Object scalars
    # would hand back an arbitrary pickled object, so they are refused.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing numpy scalar of dtype {dtype!r}")
    return _NUMPY_SCALAR(dtype, data)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    # Protocols <= 2 spell bytes as _codecs.encode(text, "latin1"); no other codec is needed.
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


# Every global an EDM network pickle needs, and nothing else. Tensor and parameter rebuilding
# are the functions `pickle.dumps(tensor)` names (torch 1.12 as used by EDM, and 2.x).
_FUNCTIONS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copyreg", "__newobj__"): _newobj,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1.x pickles (EDM's)
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2.x pickles
    ("_codecs", "encode"): _latin1_bytes,
}
_TYPES = {  # builtin types: their attributes cannot be set
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "object"): object,  # copyreg._reconstructor's base argument
    ("builtins", "dict"): dict,  # likewise, for the EasyDict stand-in
    ("numpy", "dtype"): np.dtype,
}
_ALLOWED = {k: _sealed(f) for k, f in _FUNCTIONS.items()} | _TYPES | _STAND_INS


class _EDMUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        # Python 2 names (__builtin__, copy_reg) as pickle's own find_class maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: an EDM network pickle needs only tensors, EDM's "
            f"persistent objects and plain containers, and no code from the file is run"
        )

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError(f"refusing persistent id {pid!r}")


# ---- EDM pickles -> flat state dicts ---------------------------------------------------------


def _state(obj: object, name: str) -> dict:
    if isinstance(obj, _Persistent):
        return obj.state
    if isinstance(obj, _ByReference):
        return vars(obj)
    raise ValueError(f"{name or 'the network'} is a {type(obj).__name__}, not a network module")


def _flatten(module: object, prefix: str, out: dict[str, Tensor]) -> None:
    state = _state(module, prefix.rstrip("."))
    for group in ("_parameters", "_buffers"):
        for key, value in (state.get(group) or {}).items():
            if value is None:  # e.g. EDM's Conv2d registers resample_filter=None when unused
                continue
            if not isinstance(value, Tensor):
                raise ValueError(f"{prefix}{key} is a {type(value).__name__}, not a tensor")
            out[prefix + key] = value.detach()
    for key, child in (state.get("_modules") or {}).items():
        if child is not None:
            _flatten(child, f"{prefix}{key}.", out)


_DESCRIBED = ("img_resolution", "img_channels", "model_type", "model_channels", "channel_mult")
_DESCRIBED += ("num_blocks", "attn_resolutions", "augment_dim", "dropout")


def _read_edm(path: Path) -> tuple[dict[str, Tensor], str]:
    """The flat EMA state of an EDM pickle, and a description of its network."""
    with open(path, "rb") as f:
        try:
            data = _EDMUnpickler(f).load()
        except pickle.UnpicklingError as err:
            raise pickle.UnpicklingError(f"{path}: {err}") from None
    if not isinstance(data, dict) or "ema" not in data:
        keys = list(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path} is not an EDM network pickle (a dict with ema, loss_fn, augment_pipe, "
            f"dataset_kwargs); it holds {keys}"
        )
    flat: dict[str, Tensor] = {}
    _flatten(data["ema"], "", flat)
    # EDM's persistence decorator keeps the constructor's kwargs: they say what the net is.
    kwargs = _state(data["ema"], "ema").get("_init_kwargs") or {}
    shown = ", ".join(f"{k}={kwargs[k]}" for k in _DESCRIBED if k in kwargs)
    name = getattr(data["ema"], "class_name", "network")
    return flat, f"EDM pickle {path} ({name}({shown}); EDM's defaults for what is not listed)"


def read_edm_pickle(path: str | Path) -> dict[str, Tensor]:
    """The EMA network of an EDM pickle as a flat name -> tensor dict, EDM's names
    (`model.enc.32x32_conv.weight`), read without running code from the file."""
    return _read_edm(Path(path))[0]


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


def load_init(init: str, backbone: nn.Module, cache: Path = assets.DEFAULT_CACHE) -> str:
    """Load the weights `init` names into `backbone` (strictly: every tensor, same shapes) and
    return the sha256 of the file read, for the run's provenance."""
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
        flat, what = _read_edm(path)
        state = edm_to_gcbench(flat)
    else:
        state, what = _read_snapshot(path)
    _compare(state, backbone, what)
    backbone.load_state_dict(state, strict=True)
    return checkpoint.sha256(path)
