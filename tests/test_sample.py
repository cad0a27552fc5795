import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gcbench.cli import main
from gcbench.recipes import build_network
from gcbench.sample import sample, to_uint8
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
