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


def _edm_gain(name: str) -> float:
    """EDM's SongUNet rules (networks.py, DDPM++): `init_attn` (Xavier gain sqrt(0.2)) for the
    attention qkv, `init_zero` (gain 1e-5) for each block's conv1 and attention proj and for the
    output conv, `init` (gain 1) for everything else, the 1x1 skip projection included."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "qkv":
        return 0.2**0.5
    if leaf in ("conv1", "proj", "out_conv"):
        return 1e-5
    return 1.0


def test_unet_init_scale_of_every_layer_follows_edm():
    torch.manual_seed(0)
    net = SongUNet(
        8, 3, 3, model_channels=16, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,)
    )
    layers = {
        n: m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    }
    assert any(n.endswith("skip") for n in layers) and any(n.endswith("qkv") for n in layers)
    for name, m in layers.items():
        w = m.weight
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
        bound = _edm_gain(name) * (6 / (fan_in + fan_out)) ** 0.5
        # Xavier-uniform on U(-bound, bound): every weight inside, the largest close to the bound.
        assert w.abs().max() <= bound * (1 + 1e-6), name
        assert w.abs().max() >= 0.9 * bound, name
        assert torch.count_nonzero(m.bias) == 0, name


def test_preconditioning_at_an_interior_sigma():
    seen = {}

    def backbone(x_in, c_noise):  # records F's inputs and returns F = 1 everywhere
        seen.update(x_in=x_in, c_noise=c_noise)
        return torch.ones_like(x_in)

    f = ConsistencyFunction(backbone, sigma_min=0.002, sigma_data=0.5)
    x = torch.full((2, 3), 4.0)
    out = f(x, torch.tensor([2.0, 2.0]))
    # sigma = 2: c_skip = 0.25 / (1.998^2 + 0.25), c_out = 0.5 * 1.998 / sqrt(4.25),
    # c_in = 1 / sqrt(4.25), c_noise = ln(2) / 4.
    c_skip, c_out, c_in = 0.25 / (1.998**2 + 0.25), 0.999 / 4.25**0.5, 1 / 4.25**0.5
    assert torch.allclose(seen["x_in"], torch.full((2, 3), 4.0 * c_in))
    assert torch.allclose(seen["c_noise"], torch.full((2,), 0.1732868), atol=1e-6)
    assert torch.allclose(out, torch.full((2, 3), 4.0 * c_skip + c_out))
