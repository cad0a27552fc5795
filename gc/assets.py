"""Assets: Inception weights and reference statistics for the metrics, and EDM's pretrained
networks that ECT starts from, each fetched once into a cache.

Compute nodes often have no internet, and clean-fid would download its Inception weights to
/tmp on every node. Instead `gcbench assets fetch` downloads each asset once, on a machine with
internet, into one cache directory, records its sha256 in `manifest.json`, and every evaluation
loads from there after checking the hash. Where the publisher states a hash (torch-hub style
file names carry the first 8 hex digits of the sha256) the download is checked against it;
otherwise the hash recorded at fetch time is what later loads are checked against.

A plain `gcbench assets fetch` (and `gcbench assets check`) covers the metric assets (ASSETS),
which every evaluation needs. EDM's pickles (PRETRAINED, ~220 MB each) are needed only by the
ECT runs that start from them, so they are fetched when named: `gcbench assets fetch --only
edm-cifar10`. `gcbench check` (pretrained.check_init) names that command when one is missing.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .catalog import FID_MODES
from .checkpoint import atomic_write, sha256  # noqa: F401  (sha256 re-exported)

DEFAULT_CACHE = Path("~/.cache/gcbench").expanduser()
_CLEANFID_STATS = "https://www.cs.cmu.edu/~clean-fid/stats"


@dataclass(frozen=True)
class Asset:
    filename: str
    url: str
    purpose: str
    sha256_prefix: str | None = None  # as published by the source, where it publishes one


ASSETS: dict[str, Asset] = {
    "inception": Asset(
        "inception-2015-12-05.pt",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "clean-fid's TorchScript Inception (FID in clean and legacy_tensorflow modes)",
    ),
    "inception-torch-fidelity": Asset(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        "torch-fidelity's Inception (Inception Score)",
        "6726825d",
    ),
    **{
        f"stats-cifar10-{mode}": Asset(
            f"cifar10_{mode}_train_32.npz",
            f"{_CLEANFID_STATS}/cifar10_{mode}_train_32.npz",
            f"clean-fid's CIFAR-10 training-set statistics ({mode} mode)",
        )
        for mode in FID_MODES
    },
}

# EDM's pretrained denoisers (Karras et al. 2022), the starting point of ECT (Table 2).
_EDM_PRETRAINED = "https://nvlabs-fi-cdn.nvidia.com/edm/pretrained"
PRETRAINED: dict[str, Asset] = {
    name: Asset(filename, f"{_EDM_PRETRAINED}/{filename}", f"EDM's pretrained {what}")
    for name, filename, what in (
        ("edm-cifar10", "edm-cifar10-32x32-uncond-vp.pkl", "CIFAR-10 32x32 DDPM++ (VP)"),
        ("edm-ffhq64", "edm-ffhq-64x64-uncond-vp.pkl", "FFHQ 64x64 DDPM++ (VP)"),
    )
}
KNOWN: dict[str, Asset] = ASSETS | PRETRAINED  # what fetch/status/require accept by name


class MissingAssetError(FileNotFoundError):
    pass


def _manifest(cache: Path) -> dict:
    path = cache / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _record(cache: Path, filename: str, digest: str) -> None:
    manifest = _manifest(cache) | {filename: digest}
    atomic_write(
        cache / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=2).encode())
    )


def fetch(name: str, cache: Path = DEFAULT_CACHE, progress=print) -> Path:
    """Download one asset into the cache (unless present and verified); return its path."""
    asset = KNOWN[name]
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / asset.filename
    if target.exists() and status(name, cache) == "ok":
        return target
    progress(f"downloading {asset.url}")
    tmp = target.with_name(f".{target.name}.part")
    with urllib.request.urlopen(asset.url, timeout=60) as response, open(tmp, "wb") as f:
        shutil.copyfileobj(response, f)
    digest = sha256(tmp)
    if asset.sha256_prefix and not digest.startswith(asset.sha256_prefix):
        tmp.unlink()
        raise OSError(f"{asset.url}: sha256 {digest} does not start with {asset.sha256_prefix}")
    tmp.replace(target)
    _record(cache, asset.filename, digest)
    return target


def status(name: str, cache: Path = DEFAULT_CACHE) -> str:
    """'ok', 'missing', 'unverified' (no recorded hash) or 'corrupt' (hash mismatch)."""
    asset = KNOWN[name]
    path = cache / asset.filename
    if not path.exists():
        return "missing"
    expected = _manifest(cache).get(asset.filename)
    if expected is None:
        return "unverified"
    return "ok" if sha256(path) == expected else "corrupt"


def require(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The verified path of an asset, or an error that says where it comes from and how to
    fetch it. Call before any sampling, so a missing file costs nothing."""
    asset = KNOWN[name]
    state = status(name, cache)
    if state == "ok":
        return cache / asset.filename
    kind, only = (
        ("pretrained network", f" --only {name}") if name in PRETRAINED else ("metric asset", "")
    )
    raise MissingAssetError(
        f"{kind} {asset.filename} is {state} in {cache} ({asset.purpose}). It comes from "
        f"{asset.url}. On a machine with internet run "
        f"`gcbench assets fetch{only} --cache-dir {cache}`."
    )
