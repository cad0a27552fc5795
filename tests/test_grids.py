"""Sample grids: one PNG per snapshot, from noise shared by every snapshot, seed and variant."""

import numpy as np
from gcbench import grids
from gcbench.recipes import resolve
from gcbench.sample import load_network
from gcbench.train import train
from PIL import Image


def test_tile_places_images_row_major_with_padding():
    images = np.stack([np.full((2, 2, 1), 10 * (k + 1), np.uint8) for k in range(5)])
    grid = grids.tile(images)  # 5 images: 3 columns, 2 rows
    assert grid.shape == (2 * 4 + 2, 3 * 4 + 2, 1)
    assert grid[2, 2, 0] == 10 and grid[2, 6, 0] == 20 and grid[6, 2, 0] == 40
    assert grid[6, 10, 0] == 128 and grid[0, 0, 0] == 128  # the empty cell and the border


def test_every_snapshot_has_a_grid_that_redraws_identically(tiny_digits, tmp_path):
    c = tiny_digits("gc", "sample_grid=16")
    run = tmp_path / "run"
    assert train(c, run, progress=False) == "done"
    written = sorted(p.name for p in (run / grids.SAMPLES).glob("*.png"))
    assert written == ["step-0000020.png", "step-0000040.png"]  # snapshot_every=20 of 40
    first, last = (np.asarray(Image.open(run / grids.SAMPLES / n)) for n in written)
    assert first.shape == last.shape == (4 * 10 + 2, 4 * 10 + 2)  # 16 8x8 digits, 4 x 4
    assert not np.array_equal(first, last)  # the run moved between snapshots

    net, _, step = load_network(run, 40)
    again = grids.write_grid(net, c, step, tmp_path / "again", "cpu")
    assert again.read_bytes() == grids.grid_path(run, 40).read_bytes()


def test_the_noise_is_the_same_for_every_seed_and_variant(tiny_digits, tmp_path):
    net, _, _ = load_network(_trained(tiny_digits, tmp_path), "final")
    ic = grids.write_grid(
        net, tiny_digits("ic", "seed=0", "sample_grid=9"), 1, tmp_path / "a", "cpu"
    )
    gc = grids.write_grid(
        net, tiny_digits("gc", "seed=3", "sample_grid=9"), 1, tmp_path / "b", "cpu"
    )
    assert ic.read_bytes() == gc.read_bytes()  # same weights, same noise: the same picture


def _trained(tiny_digits, tmp_path):
    run = tmp_path / "trained"
    train(tiny_digits("ic", "total_steps=20", "sample_grid=0"), run, progress=False)
    assert not (run / grids.SAMPLES).exists()  # sample_grid=0: no pictures
    return run


def test_the_toy_gets_a_scatter_over_its_target(tmp_path):
    c = resolve(
        "toy2d-gc", ["total_steps=20", "snapshot_every=20", "device=cpu", "sample_grid=200"]
    )
    run = tmp_path / "toy"
    train(c, run, progress=False)
    picture = Image.open(grids.grid_path(run, 20))
    assert picture.size == (400, 400)
    net, _, _ = load_network(run, 20)
    again = grids.write_grid(net, c, 20, tmp_path / "again", "cpu")
    assert again.read_bytes() == grids.grid_path(run, 20).read_bytes()
