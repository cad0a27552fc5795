import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gcbench.cli import main
from gcbench.recipes import build_network
from gcbench.sample import SIGMA_MID, image_noise, sample, to_uint8
from gcbench.train import train


def _f(tiny_digits):
    net = build_network(tiny_digits("ic")).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net


@pytest.mark.parametrize("steps", [1, 2])
def test_samples_do_not_depend_on_batch_size(tiny_digits, steps):
    f = _f(tiny_digits)
    a = sample(f, 10, (1, 8, 8), seed=5, steps=steps, batch_size=3)
    b = sample(f, 10, (1, 8, 8), seed=5, steps=steps, batch_size=10)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, sample(f, 10, (1, 8, 8), seed=6, steps=steps))


def test_evaluation_seeds_share_no_noise_draws():
    # With seed + j, seed 1's image 0 was seed 0's image 1: resamplings were near copies.
    a = image_noise(0, 0, 6, (1, 4, 4), "cpu").flatten(1)
    b = image_noise(1, 0, 6, (1, 4, 4), "cpu").flatten(1)
    assert torch.cdist(a, b).min() > 1.0
    # Still one stream per image: a window of the batch is the same draws.
    assert torch.equal(image_noise(0, 2, 3, (1, 4, 4), "cpu").flatten(1), a[2:5])


def test_one_step_noise_is_the_first_draw_of_two_step():
    one = image_noise(3, 10, 4, (2, 3, 3), "cpu", draws=1)
    two = image_noise(3, 10, 4, (2, 3, 3), "cpu", draws=2)
    assert one.shape == (4, 1, 2, 3, 3) and torch.equal(one[:, 0], two[:, 0])
    assert abs(two.mean().item()) < 0.25 and abs(two.std().item() - 1) < 0.2


class _Recorder:
    """A stand-in consistency function that records its inputs and returns 0.1 x."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma):
        self.calls.append((x.clone(), sigma.clone()))
        return 0.1 * x


@pytest.mark.parametrize("steps", [1, 2])
def test_sampler_inputs_are_sigma_max_z_then_the_two_step_noise_scale(steps):
    f = _Recorder()
    out = sample(f, 3, (1, 2, 2), seed=4, steps=steps, sigma_min=0.002, sigma_max=80.0)
    z = image_noise(4, 0, 3, (1, 2, 2), "cpu")
    x0, s0 = f.calls[0]
    assert torch.allclose(x0, 80.0 * z[:, 0]) and torch.equal(s0, torch.full((3,), 80.0))
    if steps == 1:
        assert len(f.calls) == 1 and torch.allclose(out, 8.0 * z[:, 0])
        return
    x1, s1 = f.calls[1]
    scale = (SIGMA_MID**2 - 0.002**2) ** 0.5  # 0.8209976: x' = x + sqrt(mid^2 - min^2) z'
    assert torch.allclose(x1, 8.0 * z[:, 0] + scale * z[:, 1], atol=1e-5)
    assert torch.allclose(s1, torch.full((3,), SIGMA_MID)) and torch.allclose(out, 0.1 * x1)


def test_two_step_differs_from_one_step(tiny_digits):
    f = _f(tiny_digits)
    one = sample(f, 4, (1, 8, 8), seed=0, steps=1)
    two = sample(f, 4, (1, 8, 8), seed=0, steps=2)
    assert one.shape == two.shape == (4, 1, 8, 8)
    assert not torch.allclose(one, two)


def test_to_uint8_clips_and_quantises():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5)
    assert to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255]
    assert to_uint8(x).shape == (1, 1, 5, 1)


def test_cli_sample_writes_uint8_images(tmp_path, tiny_digits):
    train(tiny_digits("gc", "total_steps=20"), tmp_path / "run", progress=False)
    out = tmp_path / "s.npz"
    result = CliRunner().invoke(
        main,
        [
            "sample",
            "--run-dir",
            str(tmp_path / "run"),
            "--n",
            "7",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = np.load(out)
    assert data["samples"].shape == (7, 8, 8, 1) and data["samples"].dtype == np.uint8
    assert int(data["step"]) == 20 and int(data["steps"]) == 2
    assert json.loads(str(data["precision"]))["tf32_cudnn"] is False  # fp32, recorded
