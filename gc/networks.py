"""Networks: the paper's DDPM++ UNet, a small MLP for 2-D data, and the consistency
preconditioning that turns either into a consistency function f(x, sigma).

The UNet follows EDM's "SongUNet" in its DDPM++ configuration (Karras et al. 2022, as used by
the GC paper's official code): positional noise embedding, standard encoder/decoder, resample
filter [1, 1], one attention head, attention in the decoder's first bottleneck block plus at the
listed resolutions. Like the official code it takes per-level block counts and dropout rates.
With the [1, 1] filter, EDM's resampling convolutions are exactly 2x2 average pooling (down) and
nearest-neighbour upsampling (up), which is how they are written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SKIP_SCALE = math.sqrt(0.5)


def _init(module: nn.Conv2d | nn.Linear, scale: float = 1.0) -> nn.Module:
    """EDM's initialisation: Xavier-uniform weights times `scale`, zero bias."""
    nn.init.xavier_uniform_(module.weight, gain=scale)
    nn.init.zeros_(module.bias)
    return module


def _conv(cin: int, cout: int, kernel: int, scale: float = 1.0) -> nn.Conv2d:
    return _init(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), scale)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels, eps=1e-6)


class PositionalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the scalar noise level (sin first, as EDM)."""

    def __init__(self, channels: int, max_positions: int = 10_000):
        super().__init__()
        self.channels = channels
        self.max_positions = max_positions

    def forward(self, t: Tensor) -> Tensor:
        half = self.channels // 2
        freqs = (1 / self.max_positions) ** (torch.arange(half, device=t.device) / (half - 1))
        angles = t.float().outer(freqs)
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class UNetBlock(nn.Module):
    """Residual block with optional 2x resampling and single-head self-attention."""

    def __init__(
        self,
        cin: int,
        cout: int,
        emb_channels: int,
        *,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.up, self.down, self.dropout = up, down, dropout
        self.norm0 = _norm(cin)
        self.conv0 = _conv(cin, cout, 3)
        self.affine = _init(nn.Linear(emb_channels, cout))
        self.norm1 = _norm(cout)
        self.conv1 = _conv(cout, cout, 3, scale=1e-5)
        # DDPM++ projects the skip path with a 1x1 conv whenever shape changes (resample_proj).
        # EDM initialises it like any other conv (gain 1); sqrt(0.2) is only for the qkv below.
        changes_shape = cin != cout or up or down
        self.skip = _conv(cin, cout, 1) if changes_shape else None
        self.attention = attention
        if attention:
            self.norm2 = _norm(cout)
            self.qkv = _conv(cout, 3 * cout, 1, scale=math.sqrt(0.2))
            self.proj = _conv(cout, cout, 1, scale=1e-5)

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        skip = x
        x = self.conv0(self._resample(F.silu(self.norm0(x))))
        x = F.silu(self.norm1(x + self.affine(emb)[:, :, None, None]))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        skip = self._resample(skip)
        x = (x + (self.skip(skip) if self.skip is not None else skip)) * SKIP_SCALE
        if self.attention:
            b, c, h, w = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, h * w).unbind(2)
            a = F.scaled_dot_product_attention(q.mT[:, None], k.mT[:, None], v.mT[:, None])
            x = (self.proj(a[:, 0].mT.reshape(b, c, h, w)) + x) * SKIP_SCALE
        return x


def _per_level(value: float | int | Sequence, levels: int, name: str) -> list:
    values = list(value) if isinstance(value, Sequence) else [value] * levels
    if len(values) != levels:
        raise ValueError(f"{name} has {len(values)} entries but channel_mult has {levels} levels")
    return values


class SongUNet(nn.Module):
    """EDM's DDPM++ UNet: F(x, c_noise) with the encoder/decoder layout of Song et al. 2021."""

    def __init__(
        self,
        resolution: int,
        in_channels: int,
        out_channels: int,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_blocks: int | Sequence[int] = 3,
        attn_resolutions: Sequence[int] = (),
        dropout: float | Sequence[float] = 0.0,
        channel_mult_emb: int = 4,
    ):
        super().__init__()
        levels = len(channel_mult)
        blocks = _per_level(num_blocks, levels, "num_blocks")
        drops = _per_level(dropout, levels, "dropout")
        emb = model_channels * channel_mult_emb
        # What this network is, in the terms of EDM's SongUNet arguments: a pretrained EDM
        # network must match it field by field (pretrained.check_edm_network).
        self.arch = dict(img_resolution=resolution, in_channels=in_channels)
        self.arch |= dict(out_channels=out_channels, model_channels=model_channels)
        self.arch |= dict(channel_mult=list(channel_mult), channel_mult_emb=channel_mult_emb)
        self.arch |= dict(num_blocks=blocks, attn_resolutions=sorted(attn_resolutions))
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_layer0 = _init(nn.Linear(model_channels, emb))
        self.map_layer1 = _init(nn.Linear(emb, emb))

        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = resolution >> level
            kw = dict(emb_channels=emb, dropout=drops[level])
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = _conv(cout, model_channels, 3)
                cout = model_channels
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **kw)
            for idx in range(blocks[level]):
                attn = res in attn_resolutions
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    cout, model_channels * mult, attention=attn, **kw
                )
                cout = model_channels * mult
        skips = [m.out_channels for m in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = resolution >> level
            kw = dict(emb_channels=emb, dropout=drops[level])
            if level == levels - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **kw)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **kw)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **kw)
            for idx in range(blocks[level] + 1):
                attn = idx == blocks[level] and res in attn_resolutions
                cin = cout + skips.pop()
                cout = model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(cin, cout, attention=attn, **kw)
        self.out_norm = _norm(cout)
        self.out_conv = _conv(cout, out_channels, 3, scale=1e-5)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        emb = F.silu(self.map_layer0(self.map_noise(c_noise)))
        emb = F.silu(self.map_layer1(emb))
        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))


class MLP(nn.Module):
    """F(x, c_noise) as a plain MLP on the flattened sample, with the noise embedding
    concatenated: for 2-D points, and for small images (8x8 digits), where it learns far faster
    per second on a CPU than a convolutional UNet."""

    def __init__(
        self,
        shape: int | Sequence[int],
        hidden: int = 128,
        layers: int = 3,
        emb_channels: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        dim = math.prod(self.shape)
        self.map_noise = PositionalEmbedding(emb_channels)
        widths = [dim + emb_channels] + [hidden] * layers
        body: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            body += [nn.Linear(cin, cout), nn.SiLU()]
            if dropout:
                body.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*body, nn.Linear(hidden, dim))

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        h = torch.cat([x.flatten(1), self.map_noise(c_noise)], dim=1)
        return self.body(h).view(-1, *self.shape)


class ConsistencyFunction(nn.Module):
    """f(x, sigma) = c_skip x + c_out F(c_in x, c_noise): EDM preconditioning with the
    consistency-model boundary condition, so f(x, sigma_min) = x exactly (Song et al. 2023, eq. 3).
    """

    def __init__(self, backbone: nn.Module, sigma_min: float = 0.002, sigma_data: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.sigma_min = sigma_min
        self.sigma_data = sigma_data

    def c_skip(self, sigma: Tensor, sigma_min: float | None = None) -> Tensor:
        """The weight of the input: 1 at sigma_min, so there f returns x whatever F does."""
        sigma_min = self.sigma_min if sigma_min is None else sigma_min
        return self.sigma_data**2 / ((sigma - sigma_min) ** 2 + self.sigma_data**2)

    def forward(self, x: Tensor, sigma: Tensor, sigma_min: float | None = None) -> Tensor:
        """`sigma_min=0` gives EDM's denoiser preconditioning, which ECT trains with (its
        boundary shift applies in sampling only)."""
        sigma_min = self.sigma_min if sigma_min is None else sigma_min
        sigma = sigma.to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))
        sd2 = self.sigma_data**2
        c_skip = self.c_skip(sigma, sigma_min)
        c_out = self.sigma_data * (sigma - sigma_min) / (sd2 + sigma**2).sqrt()
        c_in = 1 / (sd2 + sigma**2).sqrt()
        c_noise = sigma.flatten().log() / 4
        return c_skip * x + c_out * self.backbone(c_in * x, c_noise).to(x.dtype)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
