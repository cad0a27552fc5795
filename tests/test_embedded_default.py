"""The embedded default's pieces: the digits MLP, the UNet override, a launcher without torch."""

import subprocess
import sys

import pytest
import torch
from gcbench import catalog, couplings, losses
from gcbench.networks import MLP, ConsistencyFunction, SongUNet
from gcbench.recipes import ConfigError, build_network, parameter_count, resolve


def test_mlp_maps_images_to_images_of_the_same_shape():
    net = MLP((1, 8, 8), hidden=32, layers=2, emb_channels=16)
    x = torch.randn(5, 1, 8, 8)
    out = net(x, torch.randn(5))
    assert out.shape == (5, 1, 8, 8)
    assert net.body[0].in_features == 64 + 16  # the flattened image and the noise embedding
    # Each sample's output depends on its own input only.
    x2 = x.clone()
    x2[0] += 1
    out2 = net(x2, torch.zeros(5) + 0)
    assert not torch.allclose(out2[0], net(x, torch.zeros(5))[0])
    assert torch.allclose(out2[1:], net(x, torch.zeros(5))[1:])


def test_digits8_defaults_to_the_mlp_and_keeps_the_unet_by_override():
    c = resolve("digits8-gc")
    net = build_network(c)
    assert isinstance(net, ConsistencyFunction) and isinstance(net.backbone, MLP)
    assert (c.mlp_hidden, c.mlp_layers, c.mlp_emb_channels) == (512, 4, 64)
    # 4 hidden layers of 512 on the 64 pixels and the 64-d noise embedding.
    assert parameter_count(c) == (128 * 512 + 512) + 3 * (512 * 512 + 512) + (512 * 64 + 64)
    unet = resolve("digits8-gc", ["network=unet"])
    assert isinstance(build_network(unet).backbone, SongUNet)
    assert parameter_count(unet) == 247_313  # the earlier default's UNet


def test_mlp_dropout_is_one_rate_and_points_need_the_mlp():
    assert resolve("digits8-ic", ["dropout=0.2"]).dropout == (0.2, 0.2)
    dropped = build_network(resolve("digits8-ic", ["dropout=0.2"])).backbone
    assert any(isinstance(m, torch.nn.Dropout) for m in dropped.body)
    with pytest.raises(ConfigError, match="one rate"):
        resolve("digits8-ic", ["dropout=0.0,0.2"])
    with pytest.raises(ConfigError, match="network=mlp"):
        resolve("toy2d-ic", ["network=unet"])


def test_the_catalog_names_what_the_code_implements():
    assert set(catalog.COUPLINGS) == set(couplings.COUPLINGS)
    assert set(catalog.LOSSES) == set(losses.LOSSES)


def test_the_launcher_and_config_validation_do_not_import_torch():
    code = (
        "import sys, gcbench.cli, gcbench.launch, gcbench.study;"
        "from gcbench.recipes import resolve; resolve('cifar10-gc', ['mu=0.3']);"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_real_launch_never_imports_torch_in_the_launcher(tmp_path):
    # `gcbench launch train` submits a toy training to submitit's local executor and waits for
    # it: the job's own process imports torch, the launcher (one per Snakemake job) never does.
    run_dir = tmp_path / "run"
    args = ["launch", "train", "--recipe", "toy2d-gc", "--run-dir", str(run_dir)]
    args += ["--set", "total_steps=4", "--set", "snapshot_every=2", "--cluster", "local"]
    code = (
        "import sys; from gcbench.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (run_dir / "done.json").exists()  # the job ran, in its own process
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_fd_digits_in_memory_equals_clean_fids_folder_pipeline(tmp_path):
    from gcbench import digits_metric

    model, _, _ = digits_metric.classifier(digits_metric.build_classifier(tmp_path / "c.pt"))
    reference = digits_metric.reference_images("train")[:300]
    rng = torch.Generator().manual_seed(0)
    samples = torch.randint(0, 256, (200, 8, 8, 1), generator=rng, dtype=torch.uint8).numpy()
    samples[:100] = digits_metric.reference_images("test")[:100]  # half real, half noise
    fast = digits_metric.fd_digits(samples, reference, model, "cpu")
    slow = digits_metric.fd_digits_via_folders(samples, reference, model, "cpu")
    assert fast == pytest.approx(slow, rel=1e-6)
    assert fast > 1.0  # a real distance, not a set against itself


def test_digits_are_sklearns_digits_read_without_importing_sklearn():
    from gcbench.data import _sklearn_digits
    from sklearn.datasets import load_digits

    images, labels = _sklearn_digits()
    raw = load_digits()
    assert images.dtype == raw.images.dtype and (images == raw.images).all()
    assert (labels == raw.target).all()
    code = "import sys; from gcbench.data import digits; digits(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_default_is_sized_on_seeds_it_never_reports():
    from pathlib import Path

    from gcbench import compose

    root = Path(__file__).resolve().parents[1] / "workflow/config"
    default, sizing = (compose.load_study(root / f"{n}.yaml") for n in ("default", "sizing"))
    reported = set(default["experiments"]["digits8"]["seeds"])
    for exp in sizing["experiments"].values():
        assert exp["dataset"] == "digits8" and not reported & set(exp["seeds"])
        assert {v["coupling"] for v in exp["variants"].values()} == {"ic", "gc"}
    # The sized setting is one the sizing study measured: the same steps and snapshots.
    assert any(
        e["set"] == default["experiments"]["digits8"]["set"] for e in sizing["experiments"].values()
    )
