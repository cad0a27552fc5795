"""Pretrained initialisation (pretrained.py): EDM pickles are read without running their code,
strictly, bit for bit; gcbench snapshots and finished runs load their EMA weights."""

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import types
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gcbench import assets, checkpoint, edm_pickle, pretrained
from gcbench.cli import main
from gcbench.networks import ConsistencyFunction, SongUNet, count_parameters

SMALL = dict(resolution=8, in_channels=3, out_channels=3, model_channels=16)
SMALL |= dict(channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
# The SongUNet kwargs EDM's persistence records for SMALL (EDM's train.py --arch=ddpmpp).
EDM_KWARGS = dict(img_resolution=8, in_channels=3, out_channels=3, label_dim=0, augment_dim=9)
EDM_KWARGS |= dict(model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])
EDM_KWARGS |= dict(dropout=0.13, embedding_type="positional", channel_mult_noise=1)
EDM_KWARGS |= dict(encoder_type="standard", decoder_type="standard", resample_filter=[1, 1])


# ---- a pickle in EDM's format, built the way EDM's persistence writes it -------------------


class Persistent:
    """Pickles as EDM's torch_utils.persistence does: a call to _reconstruct_persistent_obj(meta)
    whose meta carries the class's source and the object's state."""

    def __init__(self, class_name: str, state: dict, source: str):
        self.class_name, self.state, self.source = class_name, state, source

    def __reduce__(self):
        meta = dict(
            type="class",
            version=6,
            module_src=self.source,
            class_name=self.class_name,
            state=self.state,
        )
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


class Pwned:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _fake_edm_modules() -> dict[str, types.ModuleType]:
    """torch_utils.persistence (whose constructor fails if ever called) and dnnlib.util, present
    only while pickling: loading cannot reach them."""

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("EDM's persistent constructor was called")

    class EasyDict(dict):
        pass

    found = {}
    for name, attr, obj in [
        ("torch_utils.persistence", "_reconstruct_persistent_obj", _reconstruct_persistent_obj),
        ("dnnlib.util", "EasyDict", EasyDict),
    ]:
        obj.__module__, obj.__qualname__ = name, attr
        module = types.ModuleType(name)
        setattr(module, attr, obj)
        package = types.ModuleType(name.split(".")[0])
        setattr(package, name.split(".")[1], module)
        found |= {name: module, name.split(".")[0]: package}
    return found


def _edm_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """gcbench's SongUNet state -> EDM's names, with what EDM has on top: the resample filters
    of the resampling blocks and the augmentation-label embedding."""
    res = SMALL["resolution"]
    out = {}
    for key, value in state.items():
        key = key.replace("out_norm.", f"dec.{res}x{res}_aux_norm.")
        out["model." + key.replace("out_conv.", f"dec.{res}x{res}_aux_conv.")] = value
    for block in ("enc.4x4_down", "dec.8x8_up"):
        for conv in ("conv0", "skip"):
            out[f"model.{block}.{conv}.resample_filter"] = torch.full((1, 1, 2, 2), 0.25)
    out["model.map_augment.weight"] = torch.randn(SMALL["model_channels"], 9)
    return out


def _module_state(**extra) -> dict:
    return dict(
        training=False,
        _parameters=OrderedDict(),
        _buffers=OrderedDict(),
        _non_persistent_buffers_set=set(),
        _modules=OrderedDict(),
        **extra,
    )


def _edm_pickle(
    flat: dict[str, torch.Tensor],
    source: str,
    protocol: int,
    precond: str = "EDMPrecond",
    **model_kwargs,
) -> bytes:
    """EDM's network-snapshot pickle: {ema, loss_fn, augment_pipe, dataset_kwargs}, ema an
    EDMPrecond (or `precond`) whose `model` is the SongUNet, with the kwargs EDM's persistence
    records (EDM_KWARGS | model_kwargs); enc/dec are torch ModuleDicts (by reference), every
    other module a persistent object under its bare class name, as EDM writes them."""
    modules = _fake_edm_modules()
    easy_dict = modules["dnnlib.util"].EasyDict
    kwargs = EDM_KWARGS | model_kwargs
    root = dict(label_dim=kwargs["label_dim"], _init_kwargs=dict(img_resolution=8))
    if precond == "EDMPrecond":  # VPPrecond has beta_d, beta_min, ... instead
        root |= dict(sigma_data=0.5)
    tree = _module_state(**root)
    tree["_modules"]["model"] = _module_state(_init_kwargs=kwargs)
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node["_modules"].setdefault(part, _module_state(skip_scale=np.sqrt(0.5)))
        if leaf == "resample_filter":
            node["_buffers"][leaf] = tensor.clone()
        else:
            node["_parameters"][leaf] = torch.nn.Parameter(tensor.clone(), requires_grad=False)

    def build(class_name: str, state: dict) -> object:
        children = {
            k: build("SongUNet" if k == "model" else k, v) for k, v in state["_modules"].items()
        }
        state = state | {"_modules": OrderedDict(children)}
        if class_name in ("enc", "dec"):  # torch.nn.ModuleDict, pickled by reference
            container = torch.nn.ModuleDict()
            container.__dict__.update(state)
            return container
        return Persistent(class_name, state, source)

    data = dict(
        ema=build(precond, tree),
        loss_fn=Persistent("EDMLoss", dict(P_mean=-1.2, P_std=1.2), source),
        augment_pipe=Persistent("AugmentPipe", dict(p=0.12), source),
        dataset_kwargs=easy_dict(path="cifar10-32x32.zip", resolution=np.int64(32)),
    )
    return _dumps(data, protocol, modules)


def _dumps(data: object, protocol: int, modules: dict[str, types.ModuleType]) -> bytes:
    """pickle.dumps with EDM's modules present only while pickling."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        return pickle.dumps(data, protocol=protocol)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def _source(marker: Path) -> str:
    """Module source that, if ever run, leaves a file behind and raises."""
    return f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('executed')\n"


def _small_net(seed: int) -> SongUNet:
    torch.manual_seed(seed)
    return SongUNet(**SMALL)


# ---- EDM pickles ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
def test_edm_pickle_loads_bit_for_bit_without_running_its_source(tmp_path, protocol):
    source, marker = _small_net(0), tmp_path / "executed"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(_edm_pickle(_edm_names(source.state_dict()), _source(marker), protocol))
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules

    flat = pretrained.read_edm_pickle(path)
    assert "model.enc.8x8_conv.weight" in flat and "model.dec.8x8_aux_conv.bias" in flat
    assert "model.map_augment.weight" in flat and "model.dec.8x8_up.skip.resample_filter" in flat

    net = _small_net(1)
    digest = pretrained.load_init(str(path), net)
    assert digest == checkpoint.sha256(path)
    loaded = net.state_dict()
    assert loaded.keys() == source.state_dict().keys()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert not marker.exists()
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_a_pickle_calling_any_other_global_is_refused_by_name(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(dict(ema=Pwned(f"touch {marker}"))))
    with pytest.raises(pickle.UnpicklingError, match=rf"global {os.system.__module__}\.system"):
        pretrained.read_edm_pickle(path)
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pkl"):
        pretrained.load_init(str(path), _small_net(0))
    assert not marker.exists()


def test_a_pickle_cannot_alter_the_functions_it_may_call(tmp_path):
    # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD (None, {"__defaults__": ()}): setattr.
    path = tmp_path / "alter.pkl"
    path.write_bytes(
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__)s\x86b."
    )
    before = torch._utils._rebuild_tensor_v2.__defaults__
    with pytest.raises(pickle.UnpicklingError, match="refusing BUILD on a function"):
        pretrained.read_edm_pickle(path)
    assert torch._utils._rebuild_tensor_v2.__defaults__ == before


def test_numpy_object_scalars_are_refused(tmp_path):
    # scalar(dtype("O"), None): an object scalar would hand back whatever it wraps.
    path = tmp_path / "object.pkl"
    path.write_bytes(
        b"\x80\x02cnumpy._core.multiarray\nscalar\ncnumpy\ndtype\nX\x01\x00\x00\x00O\x85RN\x86R."
    )
    with pytest.raises(pickle.UnpicklingError, match="refusing numpy dtype 'O'"):
        pretrained.read_edm_pickle(path)


# ---- hostile pickles: each refused with its reason, never a crash or an unbounded allocation -


class Call:
    """Pickles as `func(*args)`, then BUILD with `state` when one is given."""

    def __init__(self, func, args: tuple, state: object = None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _hostile_pickles() -> dict[str, tuple[bytes, str]]:
    """Each hostile file, with the reason the loader must give."""
    rebuild = torch._utils._rebuild_tensor_v2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, and still how torch pickles
        storage = torch.zeros(2).storage()

    def forged_scalar(name: str, state: tuple) -> bytes:
        # numpy's scalar(dtype, 8 bytes) with the dtype's state forged through BUILD, kept where
        # the network's kwargs are (and where gcbench before this check printed them).
        scalar = np.float64(0).__reduce__()[0]
        value = Call(scalar, (Call(np.dtype, (name, False, True), state), b"x" * 8))
        ema = Persistent("EDMPrecond", _module_state(_init_kwargs=dict(img_resolution=value)), "")
        return _dumps(dict(ema=ema), 2, _fake_edm_modules())

    # A structured dtype whose flags deny its object field: reading it dereferenced the eight
    # bytes "xxxxxxxx" as a pointer (SIGSEGV before this loader).
    object_field = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
    # A field a gigabyte past the scalar's eight bytes (SIGSEGV before this loader).
    far_field = (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1 << 30)}, 8, 1, 0)
    # A whitelisted name given a forged state.
    forged_f8 = (3, "<", None, ("a",), {"a": (np.dtype("f8"), 1 << 30)}, 8, 1, 0)
    # One 1 MB string, decoded to bytes 3 000 times through memo references (3 GB).
    text = b"X" + struct.pack("<I", 1 << 20) + b"a" * (1 << 20)
    amplify = b"\x80\x02c_codecs\nencode\nq\x000" + text + b"q\x010X\x06\x00\x00\x00latin1q\x020]"
    amplify += b"h\x00h\x01h\x02\x86Ra" * 3000 + b"."
    hooks = OrderedDict()
    return {
        "object-field.pkl": (
            forged_scalar("V8", object_field),
            "refusing numpy dtype 'V8': an EDM pickle holds only f8, f4, i8, i4",
        ),
        "far-field.pkl": (
            forged_scalar("V8", far_field),
            "refusing numpy dtype 'V8': an EDM pickle holds only f8, f4, i8, i4",
        ),
        "forged-f8.pkl": (
            forged_scalar("f8", forged_f8),
            "refusing numpy dtype 'f8' with the state (3, '<', None, ('a',), {'a': (dtype('f8'), "
            "1073741824)}, 8, 1, 0): only the standard state (3, '<', None, None, None, -1, -1, 0)",
        ),
        "huge-tensor.pkl": (
            pickle.dumps(Call(rebuild, (storage, 0, (1 << 30,), (1,), False, hooks)), 2),
            "refusing a tensor of size (1073741824,), stride (1,) and offset 0 on a storage of 2 "
            "elements: it does not fit",
        ),
        "tensor-setstate.pkl": (  # BUILD on a tensor: Tensor.__setstate__ would set_() any size
            pickle.dumps(
                Call(
                    rebuild, (storage, 0, (2,), (1,), False, hooks), (storage, 0, (1 << 30,), (1,))
                ),
                2,
            ),
            "refusing BUILD on a Tensor",
        ),
        "memo-index.pkl": (  # 9 bytes: LONG_BINPUT 2**31 - 1
            b"\x80\x02Nr\xff\xff\xff\x7f.",
            "memo index 2147483647 in a stream of 4 opcodes: a pickle numbers its memo from 0",
        ),
        "amplify.pkl": (
            amplify,
            f"_codecs.encode takes the allocation past {2 * len(amplify) + (1 << 20)} bytes "
            f"(twice the file's size plus 1 MiB)",
        ),
    }


# Loads each file named on the command line in a forked child of one interpreter whose address
# space is capped at 1 GiB above what importing gcbench took, and prints how each child ended.
_RUNNER = """
import os, resource, sys
from gcbench import pretrained
size = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = size * 1024 + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            pretrained.read_edm_pickle(path)
            message, code = "loaded", 0
        except BaseException as err:
            message, code = f"{type(err).__name__}: {err}", 1
        os.write(write, message.replace("\\n", " ").encode()[:2000])
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode(errors="replace")
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print(os.path.basename(path), status, message, sep=" | ", flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, forks")
def test_hostile_pickles_exit_cleanly_with_their_reason_within_a_memory_cap(tmp_path):
    hostile = _hostile_pickles()
    assert len(hostile["memo-index.pkl"][0]) == 9
    for name, (data, _) in hostile.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in hostile]
    out = subprocess.run(
        [sys.executable, "-c", _RUNNER, *paths], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    outcomes = {line.split(" | ")[0]: line.split(" | ", 2)[1:] for line in out.stdout.splitlines()}
    assert outcomes.keys() == hostile.keys(), out.stdout
    for name, (_, reason) in hostile.items():
        status, message = outcomes[name]
        assert status == "1", f"{name} ended with {status} (a negative status is a signal)"
        assert message.startswith(f"UnpicklingError: {tmp_path / name}: {reason}"), message


def test_numpy_1_scalars_as_edm_wrote_them_load():
    # scalar(dtype("f8", 0, 1) + BUILD of the standard state, sqrt(0.5)'s 8 bytes): numpy 1.x
    # spells align and copy as ints, numpy 2.x as booleans.
    data = b"\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00f8K\x00K\x01"
    data += b"\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    data += b"C\x08" + np.sqrt(0.5).tobytes() + b"\x86R."
    value = edm_pickle.load(data)
    assert type(value) is np.float64 and value == np.sqrt(0.5)


def test_a_stream_of_more_opcodes_than_any_edm_pickle_is_refused():
    # One byte per empty list: a million objects' worth of memory from a 1 MB file.
    with pytest.raises(pickle.UnpicklingError, match="over 1000000 opcodes"):
        edm_pickle.load(b"\x80\x02(" + b"]" * 1_000_000 + b"l.")


# ---- the architecture: EDM's EDMPrecond around the recipe's DDPM++ SongUNet ----------------


def test_a_vp_preconditioned_network_is_refused_by_name(tmp_path):
    path = tmp_path / "vp.pkl"
    path.write_bytes(_edm_pickle(_edm_names(_small_net(0).state_dict()), "", 4, "VPPrecond"))
    assert pretrained.read_edm_pickle(path)  # the tensors read; the architecture is refused
    with pytest.raises(ValueError) as err:
        pretrained.load_init(str(path), _small_net(1))
    assert "preconditioner='VPPrecond' in the file, 'EDMPrecond' in the run's network" in str(
        err.value
    )
    assert "sigma_data=None in the file, 0.5 in the run's network" in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("label_dim", 10),
        ("embedding_type", "fourier"),
        ("encoder_type", "residual"),
        ("resample_filter", [1, 3, 3, 1]),
        ("channel_mult", [1, 1]),
        ("attn_resolutions", [8]),
    ],
)
def test_another_songunet_configuration_is_refused_naming_the_field(tmp_path, field, value):
    path = tmp_path / "other.pkl"
    flat = _edm_names(_small_net(0).state_dict())
    path.write_bytes(_edm_pickle(flat, "", 4, **{field: value}))
    net = _small_net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape(f"{field}={value!r} in the file, ")):
        pretrained.load_init(str(path), net)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # untouched


def test_the_mapping_reproduces_edms_own_network_within_1e_5(tmp_path):
    # tests/data/edm_songunet_reference.npz was written once, outside this repository, by
    # running NVlabs/edm's training/networks.py (commit 008a4e5): an EDMPrecond around an
    # 8x8 DDPM++ SongUNet (8 channels, channel_mult [1, 2], one block, attention at 4x4,
    # augment_dim 9), its weights perturbed by 0.1 N(0, 1) so that no layer is near zero,
    # evaluated in eval mode. The file holds that network's state dict (EDM's names), the
    # kwargs EDM's persistence recorded, and D(x, sigma) on fixed inputs at five sigmas.
    ref = np.load(Path(__file__).parent / "data" / "edm_songunet_reference.npz")
    flat = {k.removeprefix("state/"): torch.from_numpy(ref[k]) for k in ref if k[:6] == "state/"}
    kwargs = json.loads(str(ref["model_kwargs"]))
    assert "model.enc.8x8_conv.weight" in flat and "model.map_augment.weight" in flat
    path = tmp_path / "edm-small.pkl"
    path.write_bytes(_edm_pickle(flat, "", 4, **kwargs))
    res, ch, mult = kwargs["img_resolution"], kwargs["model_channels"], kwargs["channel_mult"]
    backbone = SongUNet(res, 3, 3, ch, mult, kwargs["num_blocks"], kwargs["attn_resolutions"])
    pretrained.load_init(str(path), backbone)
    net = ConsistencyFunction(backbone, sigma_data=float(ref["sigma_data"])).eval()
    x, sigma = torch.from_numpy(ref["x"]), torch.from_numpy(ref["sigma"])
    with torch.no_grad():
        denoised = net(x, sigma, sigma_min=0)  # EDM's preconditioning
    expected = torch.from_numpy(ref["denoised"])
    assert sigma.tolist() == pytest.approx([0.002, 0.05, 0.5, 2.0, 80.0])
    assert (denoised - expected).abs().max() < 1e-5
    assert (expected - x * 0.25 / (sigma[:, None, None, None] ** 2 + 0.25)).abs().max() > 0.1


def test_strict_mapping_names_missing_misshapen_and_unexpected_tensors(tmp_path):
    flat = _edm_names(_small_net(0).state_dict())
    del flat["model.enc.8x8_block0.conv0.bias"]
    flat["model.dec.8x8_aux_conv.weight"] = torch.zeros(3, 16, 1, 1)
    flat["model.map_label.weight"] = torch.zeros(16, 10)
    path = tmp_path / "edm.pkl"
    path.write_bytes(_edm_pickle(flat, "", 4))
    net = _small_net(1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as err:
        pretrained.load_init(str(path), net)
    message = str(err.value)
    assert "1 missing from the file: enc.8x8_block0.conv0.bias" in message
    assert "out_conv.weight (3, 16, 1, 1) in the file, (3, 16, 3, 3) in the network" in message
    assert "1 unexpected in the file: map_label.weight" in message
    assert "EDM pickle" in message and "img_resolution=8" in message and "channel_mult" in message
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # untouched


def test_edm_to_gcbench_drops_only_what_gcbench_has_no_counterpart_for():
    flat = _edm_names(_small_net(0).state_dict())
    mapped = pretrained.edm_to_gcbench(flat)
    assert mapped.keys() == _small_net(0).state_dict().keys()
    with pytest.raises(ValueError, match="already took"):
        pretrained.edm_to_gcbench(flat | {"model.dec.4x4_aux_conv.weight": torch.zeros(1)})


@pytest.mark.parametrize(
    "channel_mult, resolution, expected",
    [((2, 2, 2), 32, 55_732_739), ((1, 2, 2, 2), 64, 61_804_419)],
)
def test_edm_ddpmpp_parameter_counts(channel_mult, resolution, expected):
    # EDM's CIFAR-10 and FFHQ 64 networks without map_augment (docs/ect.md).
    with torch.device("meta"):
        net = SongUNet(resolution, 3, 3, 128, channel_mult, 4, (16,))
    assert count_parameters(net) == expected


# ---- gcbench snapshots and runs ------------------------------------------------------------


def _snapshot(run_dir: Path, step: int, seed: int) -> tuple[Path, SongUNet]:
    net = _small_net(seed)
    ema = ConsistencyFunction(net).state_dict()
    online = ConsistencyFunction(_small_net(seed + 100)).state_dict()
    path = checkpoint.snapshot_path(run_dir, step)
    config = dict(dataset="digits8", model_channels=16, channel_mult=[1, 2])
    checkpoint.save(dict(step=step, net=online, ema=ema, config=config), path)
    return path, net


def _assert_equal(net: torch.nn.Module, source: torch.nn.Module) -> None:
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_load_init_from_a_snapshot_takes_its_ema(tmp_path):
    path, source = _snapshot(tmp_path / "run", 20, seed=3)
    net = _small_net(0)
    assert pretrained.load_init(str(path), net) == checkpoint.sha256(path)
    _assert_equal(net, source)


def test_load_init_from_a_run_takes_its_latest_snapshot_once_finished(tmp_path):
    run = tmp_path / "runs" / "pretrain"
    _snapshot(run, 10, seed=3)
    latest, source = _snapshot(run, 20, seed=4)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        pretrained.load_init(str(run), _small_net(0))
    pretrained.check_init(str(run), tmp_path)  # a run directory is not checked
    checkpoint.write_json(dict(step=20), run / "done.json")
    net = _small_net(0)
    assert pretrained.load_init(str(run), net) == checkpoint.sha256(latest)
    _assert_equal(net, source)


def test_a_snapshot_of_another_network_names_its_config(tmp_path):
    path, _ = _snapshot(tmp_path / "run", 20, seed=3)
    with pytest.raises(ValueError, match=r"gcbench snapshot .*channel_mult=\[1, 2\]"):
        pretrained.load_init(str(path), SongUNet(**SMALL | dict(channel_mult=(1, 1))))


# ---- the asset cache and check_init --------------------------------------------------------


def test_check_init_names_the_fetch_command_for_a_missing_or_bad_asset(tmp_path):
    command = f"gcbench assets fetch --only edm-cifar10 --cache-dir {tmp_path}"
    with pytest.raises(assets.MissingAssetError, match="is missing") as err:
        pretrained.check_init("edm-cifar10", tmp_path)
    assert command in str(err.value) and "edm-cifar10-32x32-uncond-vp.pkl" in str(err.value)
    (tmp_path / "edm-cifar10-32x32-uncond-vp.pkl").write_bytes(b"truncated")
    with pytest.raises(assets.MissingAssetError, match="is unverified") as err:
        pretrained.check_init("edm-cifar10", tmp_path)
    assert command in str(err.value)
    (tmp_path / "manifest.json").write_text(json.dumps({"edm-cifar10-32x32-uncond-vp.pkl": "0"}))
    with pytest.raises(assets.MissingAssetError, match="is corrupt"):
        pretrained.check_init("edm-cifar10", tmp_path)
    # The metric assets' message is unchanged: a plain fetch covers them.
    with pytest.raises(assets.MissingAssetError, match="metric asset") as err:
        assets.require("inception", tmp_path)
    assert f"`gcbench assets fetch --cache-dir {tmp_path}`" in str(err.value)


def test_a_fetched_asset_loads_and_fetch_only_names_it(tmp_path):
    source = _small_net(0)
    asset = tmp_path / "edm-ffhq-64x64-uncond-vp.pkl"
    asset.write_bytes(_edm_pickle(_edm_names(source.state_dict()), "", 4))
    manifest = {asset.name: checkpoint.sha256(asset)}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    pretrained.check_init("edm-ffhq64", tmp_path)
    net = _small_net(1)
    assert pretrained.load_init("edm-ffhq64", net, tmp_path) == manifest[asset.name]
    _assert_equal(net, source)
    # Present and verified: `fetch --only` downloads nothing; an unknown name lists them all.
    cli = CliRunner()
    result = cli.invoke(main, ["assets", "fetch", "--only", "edm-ffhq64", "--cache-dir", tmp_path])
    assert result.exit_code == 0 and "ok       edm-ffhq64" in result.output
    result = cli.invoke(main, ["assets", "fetch", "--only", "edm-cifar", "--cache-dir", tmp_path])
    assert result.exit_code != 0 and "edm-cifar10, edm-ffhq64" in result.output


def test_check_init_names_a_missing_file_and_a_misspelt_asset(tmp_path):
    pretrained.check_init("", tmp_path)  # random initialisation
    for name in ("edm.pkl", "step-0000100.pt"):
        with pytest.raises(FileNotFoundError, match=f"init={tmp_path / name}: no such"):
            pretrained.check_init(str(tmp_path / name), tmp_path)
    with pytest.raises(ValueError, match="edm-cifar10, edm-ffhq64"):
        pretrained.check_init("edm-cifar", tmp_path)
    (tmp_path / "weights.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="neither an EDM pickle"):
        pretrained.check_init(str(tmp_path / "weights.pth"), tmp_path)


def test_a_network_with_another_resampling_filter_is_refused():
    flat = _edm_names(_small_net(0).state_dict())
    name = next(k for k in flat if k.endswith("resample_filter"))
    assert pretrained.edm_to_gcbench(flat)  # EDM's [1, 1] filter maps
    flat[name] = torch.full((1, 1, 4, 4), 1 / 64)  # e.g. a [1, 3, 3, 1] network's
    with pytest.raises(ValueError, match="not EDM's \\[1, 1\\] filter"):
        pretrained.edm_to_gcbench(flat)
