"""Dataset preparation: each source becomes the training format of data.py, a uint8 array
(N, H, W, C) in `<data_dir>/<name>/train.npy`, with a manifest (source, count, resolution,
resize method, sha256 of the array).

Each dataset has named constructions (CONSTRUCTIONS); the default is the GC paper's official
script's, and the manifest records which one built the array:
- cifar10: torchvision's train split (download, or an existing torchvision root).
- imagenet32: `resize-centercrop` (default, official): full-resolution ImageNet train images,
  torchvision Resize(32) + CenterCrop(32). `downsampled-npz`: the downsampled ImageNet 32x32
  `train_data_batch_*.npz` files (box filter), which the official script does not use.
- celeba64: `train-split` (default, official): the 162 770 train-split images of
  `list_eval_partition.txt`. `all-images`: all 202 599. The torchvision layout
  (`celeba/img_align_celeba/*.jpg`); Lanczos resize of the shorter side to 64, centre crop.
- lsun_church64: an image folder exported from LSUN's lmdb (LSUN's `data.py export`), same
  resize and crop as CelebA.
- ffhq64: a folder of FFHQ images (Table 2, ECT from EDM's FFHQ 64 model); EDM's dataset tool
  resizes the square images to 64 with Lanczos, which the same resize and crop does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import checkpoint
from .assets import sha256
from .data import DATASETS, dataset_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
SOURCES = {
    "cifar10": "optional: a torchvision root that holds cifar-10-batches-py (else downloaded)",
    "imagenet32": "a folder with the official Imagenet32 train_data_batch_{1..10}.npz, or images",
    "celeba64": "the torchvision root (celeba/img_align_celeba/) or a folder of images",
    "lsun_church64": "a folder of images exported from LSUN church_outdoor_train_lmdb",
    "ffhq64": "a folder of the 70 000 FFHQ images (e.g. images1024x1024/)",
}


# name -> {construction: description}; the first construction is the default.
CONSTRUCTIONS = {
    "cifar10": {"torchvision-train": "torchvision CIFAR10 train split"},
    "imagenet32": {
        "resize-centercrop": "full-resolution ImageNet train images, torchvision Resize(32) + "
        "CenterCrop(32), as the official script",
        "downsampled-npz": "the downsampled ImageNet 32x32 train_data_batch_*.npz (box filter), "
        "not the official script's construction",
    },
    "celeba64": {
        "train-split": "the train split (partition 0) of list_eval_partition.txt, as the "
        "official script; Lanczos resize of the shorter side to 64, centre crop",
        "all-images": "every aligned image (train, valid and test), not the official script's "
        "construction; Lanczos resize of the shorter side to 64, centre crop",
    },
    "lsun_church64": {
        "image-folder": "every image of the folder; Lanczos resize of the shorter side to 64, "
        "centre crop"
    },
    "ffhq64": {
        "image-folder": "every image of the folder; Lanczos resize to 64 (EDM's dataset tool)"
    },
}


class PrepareError(ValueError):
    """Missing, partial or corrupt input; the message says how to fix it."""


def resize_center_crop(image: Image.Image, size: int, method: int) -> np.ndarray:
    """Resize the shorter side to `size`, then crop the centre `size` x `size`."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), method)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def torchvision_resize_center_crop(size: int) -> Callable[[Image.Image], np.ndarray]:
    """torchvision's Resize(size) + CenterCrop(size) on the RGB image (the official script's)."""
    from torchvision import transforms

    pipeline = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])
    return lambda image: np.asarray(pipeline(image.convert("RGB")), dtype=np.uint8)


def from_image_folder(
    folder: Path, size: int, method: int | None = None, files: list[Path] | None = None
) -> np.ndarray:
    """Every image of `folder` (or just `files`), resized and centre-cropped to size x size:
    with PIL `method` on the shorter side, or torchvision's Resize + CenterCrop if None."""
    files = images_in(folder) if files is None else files
    if not files:
        raise PrepareError(
            f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point --source "
            f"at the folder of training images"
        )
    if method is None:
        convert = torchvision_resize_center_crop(size)
    else:
        convert = lambda image: resize_center_crop(image, size, method)
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for k, path in enumerate(tqdm(files, unit="img", desc=f"resizing to {size}")):
        try:
            with Image.open(path) as image:
                out[k] = convert(image)
        except (UnidentifiedImageError, OSError) as err:
            raise PrepareError(
                f"{path} is not a readable image ({err}); remove or replace it and rerun"
            ) from None
    return out


def _cifar10(source: Path | None, raw: Path) -> tuple[np.ndarray, str]:
    from torchvision.datasets import CIFAR10

    root = source or raw
    try:
        data = CIFAR10(str(root), train=True, download=source is None).data
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise PrepareError(
            f"CIFAR-10 at {root}: {err}. Delete the folder and rerun without --source to download"
        ) from None
    return np.ascontiguousarray(data), f"torchvision CIFAR10 train ({root})"


def _imagenet32(source: Path, construction: str) -> tuple[np.ndarray, str]:
    batches = sorted(source.glob("train_data_batch_*.npz"))
    if construction == "resize-centercrop":
        if batches:
            raise PrepareError(
                f"{source} holds the downsampled ImageNet 32x32 npz batches; the default "
                f"construction (the official script's) resizes full-resolution ImageNet train "
                f"images. Point --source at those, or pass --construction downsampled-npz"
            )
        images = from_image_folder(source, 32)
        return images, f"image folder {source} (torchvision Resize(32) + CenterCrop(32))"
    if not batches:
        raise PrepareError(
            f"{source} holds no train_data_batch_*.npz; --construction downsampled-npz needs "
            f"the ten Imagenet32 train batches from image-net.org"
        )
    expected = [source / f"train_data_batch_{k}.npz" for k in range(1, 11)]
    missing = [p.name for p in expected if not p.exists()]
    if missing:
        raise PrepareError(
            f"{source} holds a partial Imagenet32 download: missing {', '.join(missing)}. "
            f"Download all ten train batches from image-net.org (Downsampled ImageNet 32x32)"
        )
    parts = []
    for path in tqdm(expected, desc="reading Imagenet32 batches"):
        try:
            flat = np.load(path)["data"]
        except (OSError, ValueError, KeyError) as err:
            raise PrepareError(f"{path} is corrupt ({err}); download it again") from None
        parts.append(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(parts)), f"official Imagenet32 npz ({source})"


def celeba_train_split(source: Path) -> tuple[Path, list[Path]]:
    """The img_align_celeba folder and its train-split files (partition 0 of
    list_eval_partition.txt: 162 770 of the 202 599 images)."""
    root = source / "celeba" if (source / "celeba").is_dir() else source
    partition, folder = root / "list_eval_partition.txt", root / "img_align_celeba"
    if not partition.exists() or not folder.is_dir():
        raise PrepareError(
            f"{root} lacks list_eval_partition.txt or img_align_celeba/: the default "
            f"construction takes CelebA's train split from them (the torchvision layout). "
            f"Point --source at the torchvision root, or pass --construction all-images"
        )
    names = [ln.split() for ln in partition.read_text().splitlines() if ln.strip()]
    return folder, [folder / name for name, part in names if part == "0"]


def _folder_64(source: Path, name: str, construction: str) -> tuple[np.ndarray, str]:
    if construction == "train-split":
        folder, files = celeba_train_split(source)
        images = from_image_folder(folder, 64, Image.LANCZOS, files=files)
        return images, f"{folder}, train split of list_eval_partition.txt"
    celeba = source / "celeba" / "img_align_celeba"
    folder = celeba if name == "celeba64" and celeba.is_dir() else source
    return from_image_folder(folder, 64, Image.LANCZOS), f"{folder}"


def prepare(
    name: str,
    source: str | Path | None = None,
    data_dir: str | Path = "data",
    construction: str | None = None,
) -> Path:
    """Write `<data_dir>/<name>/train.npy` and `manifest.json`; return the array's path.
    `construction`: one of CONSTRUCTIONS[name]; default the official script's (the first)."""
    if name not in SOURCES:
        raise PrepareError(f"cannot prepare '{name}'; preparable: {', '.join(SOURCES)}")
    construction = construction or next(iter(CONSTRUCTIONS[name]))
    if construction not in CONSTRUCTIONS[name]:
        raise PrepareError(
            f"--construction {construction} is not one of {name}'s: "
            f"{', '.join(CONSTRUCTIONS[name])}"
        )
    source = Path(source) if source is not None else None
    if source is not None and not source.exists():
        raise PrepareError(f"--source {source} does not exist; expected {SOURCES[name]}")
    if source is None and name != "cifar10":
        raise PrepareError(f"{name} needs --source: {SOURCES[name]}")
    target = dataset_path(name, data_dir)
    if name == "cifar10":
        images, origin = _cifar10(source, target.parent / "raw")
    elif name == "imagenet32":
        images, origin = _imagenet32(source, construction)
    else:
        images, origin = _folder_64(source, name, construction)
    c, h, w = DATASETS[name].shape
    if images.shape[1:] != (h, w, c) or images.dtype != np.uint8:
        raise PrepareError(
            f"{origin} gave {images.dtype} {images.shape[1:]}, need uint8 {(h, w, c)}"
        )
    checkpoint.atomic_write(target, lambda f: np.save(f, images))
    manifest = {
        "dataset": name,
        "source": origin,
        "construction": construction,
        "construction_description": CONSTRUCTIONS[name][construction],
        "official_construction": construction == next(iter(CONSTRUCTIONS[name])),
        "count": len(images),
        "resolution": h,
        "format": "uint8 (N, H, W, C)",
        "sha256": sha256(target),
    }
    checkpoint.write_json(manifest, target.parent / "manifest.json")
    return target


def read_manifest(name: str, data_dir: str | Path = "data") -> dict | None:
    """The manifest as written (no hash check: see verify), or None if there is none."""
    path = dataset_path(name, data_dir).parent / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def verify(name: str, data_dir: str | Path = "data") -> dict:
    """The manifest, after checking the array still has the recorded hash."""
    target = dataset_path(name, data_dir)
    manifest_path = target.parent / "manifest.json"
    if not manifest_path.exists():
        raise PrepareError(f"{manifest_path} is missing; run `gcbench data prepare {name}`")
    manifest = json.loads(manifest_path.read_text())
    if not target.exists() or sha256(target) != manifest["sha256"]:
        raise PrepareError(
            f"{target} is missing or changed since it was prepared; run "
            f"`gcbench data prepare {name}` again"
        )
    return manifest
