"""Shared layers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ResBlock(nn.Module):
    """EDSR residual block without batch norm (Lim et al. 2017): x + s * conv(relu(conv(x)))."""

    def __init__(self, channels: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel convolution (Shi et al. 2016).

    ``progressive`` uses log2(scale) stages of x2 (EDSR); otherwise a single convolution to
    ``out_channels * scale**2`` channels and one shuffle (ESPCN), which keeps every convolution
    at LR size: about 4x cheaper on CPU for a narrow network.
    """

    def __init__(
        self, channels: int, scale: int, out_channels: int | None = None, progressive: bool = True
    ) -> None:
        layers: list[nn.Module] = []
        if not progressive:
            out = out_channels if out_channels is not None else channels
            layers += [nn.Conv2d(channels, out * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        elif scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(channels, 9 * channels, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"pixel-shuffle upsampler supports scales 2^n and 3, got {scale}")
        super().__init__(*layers)


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style sinusoidal embedding of a (B,) tensor into (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
