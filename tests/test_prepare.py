import numpy as np
import pytest
from gcbench.data import TrainingData
from gcbench.prepare import PrepareError, prepare, verify
from PIL import Image


def _images(folder, sizes):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k, (w, h) in enumerate(sizes):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:03d}.{'png' if k % 2 else 'jpg'}")
    return folder


def test_image_folder_becomes_the_training_format(tmp_path):
    _images(tmp_path / "celeba" / "celeba" / "img_align_celeba", [(178, 218), (80, 64), (64, 90)])
    path = prepare("celeba64", tmp_path / "celeba", tmp_path / "data")
    array = np.load(path)
    assert array.shape == (3, 64, 64, 3) and array.dtype == np.uint8
    manifest = verify("celeba64", tmp_path / "data")
    assert (
        manifest["count"] == 3 and manifest["resolution"] == 64 and "Lanczos" in manifest["source"]
    )
    data = TrainingData("celeba64", tmp_path / "data")  # the trainer reads it
    assert len(data) == 3


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
    array = np.load(prepare("imagenet32", source, tmp_path / "data"))
    assert array.shape == (40, 32, 32, 3)
    first = np.load(source / "train_data_batch_1.npz")["data"][0].reshape(3, 32, 32)
    assert np.array_equal(array[0], first.transpose(1, 2, 0))  # CHW rows -> HWC


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
        prepare("imagenet32", partial, tmp_path / "data")
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
