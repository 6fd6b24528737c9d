"""Layers shared by the latent-diffusion networks: GroupNorm ResBlocks, resampling, attention, embeddings.

All layers keep ``torch.channels_last`` tensors in that layout (convolutions, GroupNorm, nearest
upsampling and ``torch.cat`` on channels preserve it) and hold no state besides their parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.nn.blocks import sinusoidal_embedding

#: Largest number of GroupNorm groups (Wu & He 2018 use 32).
MAX_NORM_GROUPS = 32


def level_widths(channels: Sequence[int], num_res_blocks: int) -> list[int]:
    """Validated widths of a UNet-like encoder/decoder: non-empty, positive, >= 1 block per level."""
    widths = [int(c) for c in channels]
    if not widths or min(widths) <= 0:
        raise ValueError(f"channels must be a non-empty sequence of positive widths, got {widths}")
    if num_res_blocks < 1:
        raise ValueError(f"num_res_blocks must be >= 1, got {num_res_blocks}")
    return widths


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """``x`` (..., h, w) padded at the bottom and right (edge values repeated) to sides that are multiples of
    ``multiple`` (what a UNet halving its input ``log2(multiple)`` times needs); crop the output after."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def group_norm(channels: int, max_groups: int = MAX_NORM_GROUPS) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``channels``."""
    groups = math.gcd(channels, max_groups)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """Pre-activation residual block GN-SiLU-conv-GN-SiLU-conv (Ho et al. 2020; Rombach et al. 2022).

    With ``emb_channels`` the block is conditioned on an embedding by adaptive GroupNorm:
    ``h = GN(h) * (1 + scale) + shift`` (the "scale-shift norm" of Dhariwal & Nichol 2021, Sec. 3).
    """

    def __init__(
        self, in_channels: int, out_channels: int, emb_channels: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels) if emb_channels is not None else None
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.emb_proj is not None:
            if emb is None:
                raise ValueError("this ResnetBlock is conditioned: pass an embedding")
            scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve height and width with a stride-2 3x3 convolution (exact for even sizes).

    ``out_channels`` lets the convolution widen the features as it downsamples, which on CPU is
    cheaper than widening in the next block.
    """

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double height and width: nearest-neighbour upsampling then a 3x3 convolution (no checkerboard).

    ``out_channels`` lets the convolution narrow the features: the convolution runs at the doubled
    size, so narrowing here saves most of its cost.
    """

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class SelfAttention2d(nn.Module):
    """Residual multi-head self-attention over all pixels (Vaswani et al. 2017), pre-norm, 1x1 projections."""

    def __init__(self, channels: int, head_channels: int = 64) -> None:
        super().__init__()
        if channels % min(head_channels, channels):
            raise ValueError(f"channels ({channels}) must be a multiple of head_channels ({head_channels})")
        self.num_heads = max(1, channels // head_channels)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))  # (B, heads, HW, head_channels)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class SinusoidalMLP(nn.Module):
    """Scalar-per-sample embedding: sinusoidal features -> Linear -> SiLU -> Linear (Ho et al. 2020, App. B).

    ``input_scale`` multiplies the input before the sinusoids, whose periods run from 2*pi to
    2*pi*``max_period`` input units.
    """

    def __init__(
        self, features: int, out_channels: int, input_scale: float = 1.0, max_period: float = 10000.0
    ) -> None:
        super().__init__()
        if features % 2:
            raise ValueError(f"sinusoidal features must be even, got {features}")
        self.features = features
        self.input_scale = input_scale
        self.max_period = max_period
        self.first = nn.Linear(features, out_channels)
        self.last = nn.Linear(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 1:
            raise ValueError(f"expected a (B,) tensor, got shape {tuple(x.shape)}")
        features = sinusoidal_embedding(x * self.input_scale, self.features, self.max_period)
        out: Tensor = self.last(F.silu(self.first(features.to(self.first.weight.dtype))))
        return out


def downsampling_ladder(widths: Sequence[int], num_res_blocks: int) -> nn.Sequential:
    """The encoders' trunk: ``num_res_blocks`` ResnetBlocks per width, a Downsample between levels
    (input ``widths[0]`` channels, output ``widths[-1]``, ``2 ** (len(widths) - 1)`` times smaller)."""
    layers: list[nn.Module] = []
    ch = widths[0]
    for level, width in enumerate(widths):
        for _ in range(num_res_blocks):
            layers.append(ResnetBlock(ch, width))
            ch = width
        if level < len(widths) - 1:
            layers.append(Downsample(ch, widths[level + 1]))
            ch = widths[level + 1]
    return nn.Sequential(*layers)


def register_band_statistics(
    module: nn.Module, in_channels: int, band_mean: Sequence[float] | None, band_std: Sequence[float] | None
) -> None:
    """Per-band normalisation buffers ``band_mean`` and ``band_std`` of shape (1, C, 1, 1) on ``module``
    (defaults 0 and 1; not in the state dict, since the model's config holds them)."""
    mean = torch.tensor(band_mean if band_mean is not None else [0.0] * in_channels, dtype=torch.float32)
    std = torch.tensor(band_std if band_std is not None else [1.0] * in_channels, dtype=torch.float32)
    if mean.numel() != in_channels or std.numel() != in_channels:
        raise ValueError("band_mean and band_std need one value per input channel")
    if (std <= 0).any():
        raise ValueError("band_std must be positive")
    module.register_buffer("band_mean", mean.view(1, -1, 1, 1), persistent=False)
    module.register_buffer("band_std", std.view(1, -1, 1, 1), persistent=False)
