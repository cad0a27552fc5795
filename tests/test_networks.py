import pytest
import torch
from gcbench.networks import MLP, ConsistencyFunction, SongUNet
from gcbench.recipes import parameter_count, resolve


@pytest.mark.parametrize(
    ("recipe", "count"),
    [("cifar10-ic", 34_711_811), ("imagenet32-gc", 39_479_683), ("celeba64-ot", 59_582_723)],
)
def test_paper_parameter_counts(recipe, count):
    assert parameter_count(resolve(recipe)) == count


@pytest.mark.parametrize("backbone", ["unet", "mlp"])
def test_boundary_condition_f_of_x_at_sigma_min_is_x(backbone):
    if backbone == "unet":
        net = SongUNet(8, 1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1)
        x = torch.randn(4, 1, 8, 8)
    else:
        net, x = MLP(2), torch.randn(4, 2)
    # Make F non-trivial so that only the preconditioning can zero its contribution.
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    f = ConsistencyFunction(net, sigma_min=0.002)
    assert torch.equal(f(x, torch.full((4,), 0.002)), x)
    assert not torch.allclose(f(x, torch.full((4,), 1.0)), x)


def test_unet_runs_attention_and_per_level_dropout():
    net = SongUNet(
        8,
        1,
        1,
        model_channels=8,
        channel_mult=(1, 2),
        num_blocks=(1, 2),
        attn_resolutions=(4,),
        dropout=(0.0, 0.5),
    )
    out = net(torch.randn(3, 1, 8, 8), torch.randn(3))
    assert out.shape == (3, 1, 8, 8)
    assert any(getattr(b, "attention", False) for b in net.enc.values())
