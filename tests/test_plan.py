"""`gcbench plan`: FLOPs counted against hand-computed values, and a study's plan as the sum of
its runs."""

import json

import pytest
import torch
from gcbench import plan, study
from gcbench.recipes import resolve
from torch import nn


class TinyUNet(nn.Module):
    """Down (8x8 -> 4x4), up, and a skip connection concatenated, as in a UNet."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)  # 4x8x8 outputs of 1x3x3 inputs
        self.down = nn.Conv2d(4, 8, 3, stride=2, padding=1)  # 8x4x4 of 4x3x3
        self.dec = nn.Conv2d(8 + 4, 1, 3, padding=1)  # 1x8x8 of 12x3x3

    def forward(self, x):
        h = self.enc(x)
        u = nn.functional.interpolate(self.down(h), scale_factor=2)
        return self.dec(torch.cat([u, h], dim=1))


def test_conv_unet_flops_match_the_hand_count():
    net, x = TinyUNet(), torch.zeros(2, 1, 8, 8)
    enc, down, dec = 2 * 4 * 64 * 9, 2 * 8 * 16 * 36, 2 * 1 * 64 * 108  # 2 x outputs x MACs
    assert (enc, down, dec) == (4608, 9216, 13824)
    with torch.no_grad():
        assert plan.count_flops(lambda: net(x)) == 2 * (enc + down + dec)
    # Backward: every weight gradient, and the input gradient of all but the first layer.
    backward = (enc + down + dec) + (down + dec)
    assert plan.count_flops(lambda: net(x).sum().backward()) == 2 * (enc + down + dec + backward)


def test_recipe_mlp_and_its_gc_training_step_match_the_hand_count():
    c = resolve(
        "digits8-gc",
        ["mlp_hidden=32", "mlp_layers=2", "mlp_emb_channels=16", "batch_size=16", "mu=0.5"],
    )
    # Linear layers (64 pixels + 16 embedding) -> 32 -> 32 -> 64, 2 FLOPs per multiply-add.
    forward = 2 * (80 * 32 + 32 * 32 + 32 * 64)
    backward = 2 * forward - 2 * 80 * 32  # no input gradient for the first layer
    costs = plan.network_costs(c)
    assert costs["forward"] == forward == 11264
    assert costs["forward_backward"] == forward + backward
    assert costs["params"] == (80 * 32 + 32) + (32 * 32 + 32) + (32 * 64 + 64)
    # target forward + prediction forward and backward + the GC half's endpoint forward
    assert plan.step_flops(c) == 16 * (forward + forward + backward + 0.5 * forward)
    ic = resolve("digits8-ic", ["mlp_hidden=32", "mlp_layers=2", "mlp_emb_channels=16"])
    assert plan.step_flops(ic) == 128 * (2 * forward + backward)


def test_paper_network_parameters_are_the_official_counts():
    assert plan.network_costs(resolve("cifar10-gc"))["params"] == 34_711_811


TINY_STUDY = {
    "eval": {"n": 1000, "curve_n": 100, "steps": [1, 2]},
    "experiments": {
        "digits8": {
            "dataset": "digits8",
            "seeds": [0, 1],
            "set": ["total_steps=300", "snapshot_every=100", "mlp_hidden=64"],
            "variants": {"ic": {"coupling": "ic"}, "gc": {"coupling": "gc"}},
        },
        "toy2d": {"dataset": "toy2d", "seeds": [0], "variants": {"gc": {"coupling": "gc"}}},
    },
}


def test_a_study_plan_is_the_sum_of_its_runs():
    throughput = plan.load_throughput("no/such/file.json")
    rows = plan.plan(TINY_STUDY, throughput)
    runs = study.runs(TINY_STUDY)
    assert [(r["experiment"], r["variant"], r["seed"]) for r in rows] == [
        (r.experiment, r.variant, r.seed) for r in runs
    ]
    flops_per_s, source = throughput.rate("fp32")
    assert source.startswith("ASSUMED")
    for row, run in zip(rows, runs, strict=True):
        c = run.config()
        assert row["train_flop"] == plan.step_flops(c) * c.total_steps
        assert row["train_gpu_h"] == pytest.approx(row["train_flop"] / flops_per_s / 3600)
        snapshots = c.total_steps // c.snapshot_every  # 300 / 100: 3 snapshots; toy 2000 / 500
        moments = {"lion": 1, "adam": 2}[c.optimizer]  # digits8: Lion; toy2d: Adam
        # fp32 snapshots (online + EMA), and the state: online, EMA and the optimizer's moments
        expected = 4 * row["params"] * (2 * snapshots + 2 + moments)
        assert row["disk_bytes"] == expected
    total = plan.totals(rows)
    assert total["runs"] == 5
    for key in plan.SUMMED:
        by_experiment = sum(
            plan.totals(r for r in rows if r["experiment"] == e)[key] for e in ("digits8", "toy2d")
        )
        assert total[key] == pytest.approx(by_experiment)
        assert total[key] == pytest.approx(sum(r[key] for r in rows))
    assert "| TOTAL        | 5      |" in plan.render(rows, gpus=1)


def test_a_measured_throughput_file_replaces_the_assumption(tmp_path):
    path = tmp_path / "throughput.json"
    entry = {"recipe": "digits8-ic", "batch_size": 128, "tf32": False, "bf16": False}
    path.write_text(json.dumps({"gpu": "Test GPU", "train": [entry | {"images_per_s": 12_800}]}))
    throughput = plan.load_throughput(path)
    config = {
        "experiments": {
            "d": {"dataset": "digits8", "seeds": [0], "variants": {"ic": {"coupling": "ic"}}}
        }
    }
    (row,) = plan.plan(config, throughput)
    assert row["throughput"].startswith("MEASURED on Test GPU")
    # 128 images at 12 800 images/s: 0.01 s per step of the measured recipe itself.
    assert row["train_gpu_h"] == pytest.approx(row["steps"] * 0.01 / 3600)
