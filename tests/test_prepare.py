import numpy as np
import pytest
from gcbench.data import TrainingData
from gcbench.prepare import PrepareError, prepare, resize_center_crop, verify
from PIL import Image


def _images(folder, sizes):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k, (w, h) in enumerate(sizes):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:03d}.{'png' if k % 2 else 'jpg'}")
    return folder


def _celeba(root):
    folder = _images(root / "celeba" / "img_align_celeba", [(178, 218), (80, 64), (64, 90)])
    # CelebA's partition file: 0 train, 1 valid, 2 test.
    (root / "celeba" / "list_eval_partition.txt").write_text("000.jpg 0\n001.png 1\n002.jpg 0\n")
    return folder


def test_celeba_default_is_the_official_train_split(tmp_path):
    folder = _celeba(tmp_path / "celeba")
    array = np.load(prepare("celeba64", tmp_path / "celeba", tmp_path / "data"))
    assert array.shape == (2, 64, 64, 3) and array.dtype == np.uint8
    with Image.open(folder / "002.jpg") as image:  # train images 000 and 002, in that order
        assert np.array_equal(array[1], resize_center_crop(image, 64, Image.LANCZOS))
    manifest = verify("celeba64", tmp_path / "data")
    assert manifest["count"] == 2 and manifest["resolution"] == 64
    assert manifest["construction"] == "train-split" and manifest["official_construction"]
    assert len(TrainingData("celeba64", tmp_path / "data")) == 2  # the trainer reads it
    prepare("celeba64", tmp_path / "celeba", tmp_path / "all", construction="all-images")
    manifest = verify("celeba64", tmp_path / "all")
    assert manifest["count"] == 3 and not manifest["official_construction"]


def test_imagenet32_default_is_torchvision_resize_and_centre_crop(tmp_path):
    folder = _images(tmp_path / "imagenet" / "n01440764", [(96, 64)])
    array = np.load(prepare("imagenet32", tmp_path / "imagenet", tmp_path / "data"))
    with Image.open(folder / "000.jpg") as image:
        # Resize(32): the shorter side to 32 with PIL bilinear, 96x64 -> 48x32; CenterCrop(32).
        expected = np.asarray(image.convert("RGB").resize((48, 32), Image.BILINEAR))[:, 8:40]
    assert np.array_equal(array[0], expected)
    manifest = verify("imagenet32", tmp_path / "data")
    assert manifest["construction"] == "resize-centercrop" and manifest["official_construction"]


def test_centre_crop_keeps_the_middle(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    wide = np.zeros((64, 192, 3), dtype=np.uint8)
    wide[:, 64:128] = 255  # a white middle third
    Image.fromarray(wide).save(folder / "wide.png")
    array = np.load(prepare("lsun_church64", folder, tmp_path / "data"))
    assert array[0].min() > 200  # only the white middle survives the crop


def test_official_imagenet32_batches(tmp_path):
    source = tmp_path / "in32"
    source.mkdir()
    rng = np.random.default_rng(1)
    for k in range(1, 11):
        np.savez(
            source / f"train_data_batch_{k}.npz",
            data=rng.integers(0, 256, (4, 3072), dtype=np.uint8),
        )
    with pytest.raises(PrepareError, match="--construction downsampled-npz"):
        prepare("imagenet32", source, tmp_path / "data")  # not the official construction
    array = np.load(prepare("imagenet32", source, tmp_path / "data", "downsampled-npz"))
    assert verify("imagenet32", tmp_path / "data")["construction"] == "downsampled-npz"
    assert array.shape == (40, 32, 32, 3)
    first = np.load(source / "train_data_batch_1.npz")["data"][0].reshape(3, 32, 32)
    assert np.array_equal(array[0], first.transpose(1, 2, 0))  # CHW rows -> HWC


def _no_partition(tmp_path):
    return _images(tmp_path / "no-partition" / "celeba" / "img_align_celeba", [(64, 64)]).parent


def test_error_paths_name_the_fix(tmp_path):
    with pytest.raises(PrepareError, match="needs --source"):
        prepare("celeba64", None, tmp_path / "data")
    with pytest.raises(PrepareError, match="does not exist"):
        prepare("lsun_church64", tmp_path / "nowhere", tmp_path / "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="holds no images"):
        prepare("lsun_church64", tmp_path / "empty", tmp_path / "data")
    partial = tmp_path / "partial"
    partial.mkdir()
    np.savez(partial / "train_data_batch_1.npz", data=np.zeros((1, 3072), np.uint8))
    with pytest.raises(
        PrepareError, match="partial Imagenet32 download: missing train_data_batch_2.npz"
    ):
        prepare("imagenet32", partial, tmp_path / "data", "downsampled-npz")
    with pytest.raises(PrepareError, match="--construction all-images"):
        prepare("celeba64", _no_partition(tmp_path), tmp_path / "data")
    broken = _images(tmp_path / "broken", [(70, 70)])
    (broken / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(PrepareError, match="bad.jpg is not a readable image"):
        prepare("lsun_church64", broken, tmp_path / "data")
    assert not (tmp_path / "data" / "lsun_church64" / "train.npy").exists()


def test_verify_detects_a_changed_array(tmp_path):
    prepare("lsun_church64", _images(tmp_path / "imgs", [(64, 64)]), tmp_path / "data")
    path = tmp_path / "data" / "lsun_church64" / "train.npy"
    array = np.load(path)
    array[0, 0, 0, 0] ^= 1
    np.save(path, array)
    with pytest.raises(PrepareError, match="changed since it was prepared"):
        verify("lsun_church64", tmp_path / "data")


def test_every_paper_dataset_has_a_source_and_an_official_construction():
    from gcbench.catalog import PAPER_DATASETS
    from gcbench.prepare import CONSTRUCTIONS, SOURCES

    assert list(SOURCES) == list(CONSTRUCTIONS) == list(PAPER_DATASETS)
    assert all(CONSTRUCTIONS[name] for name in PAPER_DATASETS)
