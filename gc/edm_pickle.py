"""EDM's network pickles read as data: no code from the file runs, and what is allocated stays
within a small multiple of the file's size, whatever the file says.

EDM pickles every network object as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, whose `meta` carries the module's
source code; unpickling normally `exec`s it. Here:

- the opcode stream is first walked with `pickletools.genops`: every argument must lie inside the
  file, every memo index must be below the stream's opcode count (the C unpickler sizes its memo
  by the largest index, so a 9-byte stream could ask it for gigabytes), a memo entry must be
  written before it is read, and the opcodes are at most a million (20 times EDM's);
- Python's pure-Python unpickler then rebuilds the objects with a fixed set of globals, each
  mapped to a passive stand-in or to a checking function. BUILD, SETITEM(S), APPEND(S) and
  ADDITEMS act only on stand-ins and plain containers: never on a tensor (its `__setstate__`
  would `set_` any size onto a storage) nor on anything else torch or numpy implements;
- numpy scalars take their dtype from a whitelist, built afresh; the dtype state in the file
  must be the whitelisted one and is then dropped (a forged state makes numpy read pointers from
  the file's bytes);
- storages are read from torch's legacy format here, without `torch.load`, and every tensor must
  fit its storage;
- what the callables copy (text to bytes, bytes to storages, containers) is charged to a budget
  of twice the file's size plus 1 MiB, so that a memo reference read a million times cannot
  multiply an allocation.

Every refusal is a `pickle.UnpicklingError` that says why.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import pickle
import pickletools
import struct
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

UnpicklingError = pickle.UnpicklingError

_SLACK = 1 << 20  # bytes a file may allocate beyond twice its size: its small containers
_MAX_DIM = 8  # EDM's tensors have at most 4 dimensions
# Opcodes per pickle: each can leave a small object behind (an empty list from one byte), so
# their count bounds what is not charged to the budget. EDM's CIFAR-10 pickle has 48 043.
_MAX_OPS = 1_000_000


# ---- stand-ins: objects that hold data and run nothing -------------------------------------


class Persistent:
    """An EDM persistent object (EDMPrecond, SongUNet, UNetBlock, EDMLoss, ...): its class name
    (EDM keeps the bare name, e.g. "EDMPrecond") and its __dict__ as pickled."""

    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state


class ByReference:
    """A module EDM pickles by reference (torch's ModuleDict): made with __new__, its __dict__
    filled by BUILD; no method of the real class runs."""

    class_name = "ModuleDict"


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a dict, without the attribute access."""


class _DType:
    """A numpy dtype named by the pickle: only its whitelisted name is kept."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"dtype({self.name!r})"

    def __setstate__(self, state: object) -> None:
        if type(state) is not tuple or state != _DTYPES[self.name][1]:
            raise UnpicklingError(
                f"refusing numpy dtype {self.name!r} with the state {_short(state)}: only the "
                f"standard state {_DTYPES[self.name][1]} is accepted"
            )


class _Storage:
    """A storage read from torch's legacy format: its elements as a 1-D tensor."""

    __slots__ = ("data",)

    def __init__(self, data: Tensor):
        self.data = data


class _StorageType:
    """torch.<Type>Storage as named in a legacy storage record."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _Base:
    """builtins.object / builtins.dict as copyreg._reconstructor's base: a name, not a callable,
    so that REDUCE cannot call dict() on a memo reference again and again."""

    __slots__ = ("kind",)

    def __init__(self, kind: type):
        self.kind = kind


_BUILDABLE = (ByReference, _EasyDict, _DType)
_STAND_IN_TYPES = (ByReference, _EasyDict)

# The scalars an EDM pickle holds (UNetBlock.skip_scale = np.sqrt(0.5) is a float64), and the
# state numpy pickles with each (version 3, byte order, no fields, no subarray, no flags).
_DTYPES = {
    name: (np.dtype(spec), (3, spec[0], None, None, None, -1, -1, 0))
    for name, spec in [("f8", "<f8"), ("f4", "<f4"), ("i8", "<i8"), ("i4", "<i4")]
}
# What EDM's weights are stored as (bool and uint8 are left out: not every byte is a valid bool).
_STORAGE_TYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy (non-zip) serialisation
_LEGACY_PROTOCOL = 1001


def _short(obj: object) -> str:
    text = obj.__class__.__name__ if isinstance(obj, Tensor) else repr(obj)
    return text if len(text) <= 120 else text[:117] + "..."


class _Budget:
    def __init__(self, limit: int):
        self.limit, self.left = limit, limit

    def charge(self, nbytes: int, what: str) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise UnpicklingError(
                f"{what} takes the allocation past {self.limit} bytes (twice the file's size "
                f"plus 1 MiB): a real EDM pickle needs less"
            )


# ---- the callables a pickle may name ---------------------------------------------------------


def _persistent(meta: object) -> Persistent:
    # EDM's version would exec(meta["module_src"]); only the class name and state are kept.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnpicklingError("not an EDM persistent class object (meta['type'] != 'class')")
    name, state = meta.get("class_name"), meta.get("state") or {}
    if not isinstance(name, str) or not isinstance(state, dict):
        raise UnpicklingError("EDM persistent object without a class name and a dict state")
    return Persistent(name, state)


def _natural(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise UnpicklingError(f"refusing a tensor whose {what} is {_short(value)}")
    return value


def _tensor(
    storage: object,
    offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    metadata: object = None,
) -> Tensor:
    # torch._utils._rebuild_tensor_v2's arguments. The size, stride and offset must address
    # elements of the storage only: torch would otherwise grow it with uninitialised memory.
    if not isinstance(storage, _Storage):
        raise UnpicklingError(f"refusing a tensor on a {type(storage).__name__}, not a storage")
    if type(size) is not tuple or type(stride) is not tuple or len(size) != len(stride):
        raise UnpicklingError("refusing a tensor whose size and stride are not tuples of a length")
    if len(size) > _MAX_DIM or backward_hooks or metadata or type(requires_grad) is not bool:
        raise UnpicklingError("refusing a tensor with hooks, metadata or over 8 dimensions")
    offset = _natural(offset, "offset")
    size = tuple(_natural(s, "size") for s in size)
    stride = tuple(_natural(s, "stride") for s in stride)
    available = storage.data.numel()
    numel = math.prod(size)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
    if numel and (numel > available or last >= available):
        raise UnpicklingError(
            f"refusing a tensor of size {size}, stride {stride} and offset {offset} on a storage "
            f"of {available} elements: it does not fit"
        )
    # Weights are read, not trained: the tensor comes back without requires_grad.
    return storage.data.as_strided(size, stride, offset) if numel else storage.data[:0].view(size)


def _parameter(data: object, requires_grad: object, backward_hooks: object) -> Tensor:
    if not isinstance(data, Tensor) or type(requires_grad) is not bool or backward_hooks:
        raise UnpicklingError("refusing a parameter that is not a plain tensor without hooks")
    return data


def _dtype(name: object, align: object = False, copy: object = True) -> _DType:
    # numpy 1.x pickles align and copy as the ints 0 and 1, numpy 2.x as booleans.
    if not isinstance(name, str) or name not in _DTYPES or type(align) not in (bool, int) or align:
        raise UnpicklingError(
            f"refusing numpy dtype {_short(name)}: an EDM pickle holds only {', '.join(_DTYPES)}"
        )
    return _DType(name)


def _scalar(dtype: object, data: object = None) -> np.generic:
    # The dtype is built from the whitelist; the file supplies only the scalar's bytes.
    if not isinstance(dtype, _DType):
        raise UnpicklingError(f"refusing numpy scalar of dtype {_short(dtype)}")
    built = _DTYPES[dtype.name][0]
    if not isinstance(data, bytes) or len(data) != built.itemsize:
        raise UnpicklingError(f"refusing a {built} scalar that is not {built.itemsize} bytes")
    return np.frombuffer(data, dtype=built)[0]


def _newobj(cls: object, *args: object) -> object:
    if not (isinstance(cls, type) and issubclass(cls, _STAND_IN_TYPES)):
        raise UnpicklingError(f"refusing copyreg.__newobj__ of {_short(cls)}")
    return cls.__new__(cls)


def _callables(budget: _Budget) -> dict[tuple[str, str], object]:
    """Every global an EDM network pickle names, each mapped to what stands in for it."""

    def latin1(text: object, encoding: object) -> bytes:
        # Protocols <= 2 spell bytes as _codecs.encode(text, "latin1"); no other codec.
        if not isinstance(text, str) or encoding != "latin1":
            raise UnpicklingError(f"refusing _codecs.encode(..., {_short(encoding)})")
        budget.charge(len(text), "_codecs.encode")
        return text.encode("latin1")

    def sized(kind: type) -> Callable[..., object]:
        def build(items: object = ()) -> object:
            budget.charge(64 * len(items), kind.__name__)  # type: ignore[arg-type]
            return kind(items)

        return build

    def reconstructor(cls: object, base: object, state: object) -> object:
        # copyreg._reconstructor, which protocols 0 and 1 use: for stand-ins only.
        obj = _newobj(cls)
        if not isinstance(base, _Base) or (base.kind is dict) != isinstance(obj, dict):
            raise UnpicklingError(f"refusing copyreg._reconstructor with base {_short(base)}")
        if base.kind is dict and isinstance(state, dict):
            budget.charge(64 * len(state), "copyreg._reconstructor")
            dict.update(obj, state)
        elif state is not None:
            raise UnpicklingError("refusing copyreg._reconstructor with a state")
        return obj

    return {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
        ("torch._utils", "_rebuild_tensor_v2"): _tensor,
        ("torch._utils", "_rebuild_parameter"): _parameter,
        ("torch.storage", "_load_from_bytes"): lambda data: _legacy_storage(data, budget),
        ("copyreg", "_reconstructor"): reconstructor,
        ("copyreg", "__newobj__"): _newobj,
        ("numpy.core.multiarray", "scalar"): _scalar,  # numpy 1.x pickles (EDM's)
        ("numpy._core.multiarray", "scalar"): _scalar,  # numpy 2.x pickles
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): latin1,
        ("collections", "OrderedDict"): sized(OrderedDict),
        ("builtins", "set"): sized(set),
        ("builtins", "frozenset"): sized(frozenset),
        ("builtins", "object"): _Base(object),
        ("builtins", "dict"): _Base(dict),
        ("torch.nn.modules.container", "ModuleDict"): ByReference,
        ("dnnlib.util", "EasyDict"): _EasyDict,
    }


# ---- the stream: scanned, then unpickled -----------------------------------------------------

_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}


def _scan(stream: io.BytesIO) -> int:
    """Walk the opcodes of the pickle at the stream's position without building anything;
    return where it ends, the stream left where it was."""
    start = stream.tell()
    ops, memo = 0, set()
    try:
        for op, arg, _ in pickletools.genops(stream):
            ops += 1
            if ops > _MAX_OPS:
                raise UnpicklingError(f"over {_MAX_OPS} opcodes: far more than an EDM network's")
            if op.name in _PUTS:
                memo.add(arg)
            elif op.name == "MEMOIZE":
                memo.add(len(memo))
            elif op.name in _GETS and arg not in memo:
                raise UnpicklingError(f"memo index {arg} is read before it is written")
    except ValueError as err:  # an unknown opcode, an argument past the end, no STOP
        raise UnpicklingError(f"malformed pickle stream: {err}") from None
    if memo and max(memo) >= ops:
        raise UnpicklingError(
            f"memo index {max(memo)} in a stream of {ops} opcodes: a pickle numbers its memo "
            f"from 0, one entry per object"
        )
    end = stream.tell()
    stream.seek(start)
    return end


class _Unpickler(pickle._Unpickler):
    """Python's pure-Python unpickler with fixed globals, no persistent ids unless given, and
    the opcodes that act on an existing object restricted to stand-ins and plain containers."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(
        self,
        file: io.BytesIO,
        allowed: dict[tuple[str, str], object],
        persistent: Callable[[object], object] | None = None,
    ):
        super().__init__(file)
        self._allowed, self._persistent = allowed, persistent

    def find_class(self, module: str, name: str) -> object:
        # Python 2 names (__builtin__, copy_reg) as pickle's own find_class maps them.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        raise UnpicklingError(
            f"refusing global {module}.{name}: an EDM network pickle needs only tensors, EDM's "
            f"persistent objects and plain containers, and no code from the file is run"
        )

    def persistent_load(self, pid: object) -> object:
        if self._persistent is None:
            raise UnpicklingError(f"refusing persistent id {_short(pid)}")
        return self._persistent(pid)

    @staticmethod
    def _only(target: object, kinds: type | tuple[type, ...], opcode: str) -> None:
        if not isinstance(target, kinds):
            raise UnpicklingError(f"refusing {opcode} on a {type(target).__name__}")

    def load_build(self) -> None:
        self._only(self.stack[-2], _BUILDABLE, "BUILD")
        super().load_build()

    def load_setitem(self) -> None:
        self._only(self.stack[-3], dict, "SETITEM")
        super().load_setitem()

    def load_setitems(self) -> None:
        self._only(self.metastack[-1][-1], dict, "SETITEMS")
        super().load_setitems()

    def load_append(self) -> None:
        self._only(self.stack[-2], list, "APPEND")
        super().load_append()

    def load_appends(self) -> None:
        self._only(self.metastack[-1][-1], list, "APPENDS")
        super().load_appends()

    def load_additems(self) -> None:
        self._only(self.metastack[-1][-1], set, "ADDITEMS")
        super().load_additems()

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.ADDITEMS[0]] = load_additems


def _unpickle(
    stream: io.BytesIO,
    allowed: dict[tuple[str, str], object],
    persistent: Callable[[object], object] | None = None,
) -> object:
    """The pickle at the stream's position, scanned first; the stream is left at its end."""
    end = _scan(stream)
    try:
        obj = _Unpickler(stream, allowed, persistent).load()
    except UnpicklingError:
        raise
    except Exception as err:  # a malformed stream: say what broke, as UnpicklingError
        raise UnpicklingError(f"{type(err).__name__}: {err}") from None
    stream.seek(end)
    return obj


# ---- torch's legacy storage format, read by hand ---------------------------------------------


def _legacy_storage(blob: object, budget: _Budget) -> _Storage:
    """torch.storage._load_from_bytes: one storage as torch's legacy `torch.save` wrote it (how
    every torch version pickles a tensor's storage): five small pickles (magic number, protocol,
    system info, the storage's record, its key), then the element count and the raw
    little-endian elements."""
    if not isinstance(blob, bytes):
        raise UnpicklingError(f"refusing a storage from a {type(blob).__name__}, not bytes")
    types = {("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_TYPES.items()}
    records: list[tuple] = []

    def record(pid: object) -> object:
        if not (
            type(pid) is tuple
            and len(pid) == 6
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and all(isinstance(s, str) for s in pid[2:4])
            and type(pid[4]) is int
            and pid[4] >= 0
            and pid[5] is None
        ):
            raise UnpicklingError(f"refusing storage record {_short(pid)}")
        records.append(pid)
        return pid

    stream = io.BytesIO(blob)
    magic, protocol, info = (_unpickle(stream, {}) for _ in range(3))
    if (magic, protocol) != (_LEGACY_MAGIC, _LEGACY_PROTOCOL):
        raise UnpicklingError("refusing a storage not in torch's legacy format")
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise UnpicklingError("refusing a storage written on a big-endian machine")
    pid = _unpickle(stream, types, record)
    keys = _unpickle(stream, {})
    if len(records) != 1 or pid is not records[0] or keys != [pid[2]]:
        raise UnpicklingError("refusing a storage blob that is not exactly one storage")
    dtype, numel = pid[1].dtype, pid[4]
    start = stream.tell() + 8
    if len(blob) < start:
        raise UnpicklingError("refusing a storage without its element count")
    (count,) = struct.unpack("<q", blob[start - 8 : start])
    nbytes = numel * dtype.itemsize
    if count != numel or len(blob) - start != nbytes:
        raise UnpicklingError(
            f"refusing a storage declared as {numel} elements of {dtype} with a count of "
            f"{count} and {len(blob) - start} bytes of data"
        )
    budget.charge(nbytes, "a storage")
    data = bytearray(blob[start:])
    return _Storage(torch.frombuffer(data, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype))


def load(data: bytes) -> object:
    """The object an EDM pickle's bytes hold, read as data (see the module's docstring)."""
    stream = io.BytesIO(data)
    obj = _unpickle(stream, _callables(_Budget(2 * len(data) + _SLACK)))
    if stream.tell() != len(data):
        raise UnpicklingError(f"{len(data) - stream.tell()} bytes follow the pickle's end")
    return obj
