"""The fast residual CNN: EDSR-style body, pixel-shuffle upsampler, bicubic global skip."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from satsr.nn.blocks import BicubicPhases, PixelShuffleUpsampler, ResBlock
from satsr.nn.layers import register_band_statistics


class ResidualSR(nn.Module):
    """Fixed-scale SR network predicting the residual over bicubic upsampling.

    Works on reflectance; per-band normalisation statistics are part of the config so that the
    saved ``config.json`` fully describes the model. With the single LR-size pixel shuffle, the
    bicubic base is added to the residual's sub-pixel phases before the shuffle (``BicubicPhases``),
    so no HR-sized interpolation runs (the same result, about a quarter of the model's time less on CPU).
    """

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        in_channels: int = 4,  # bands of the input and output
        scale: int = 4,  # integer upscaling factor
        channels: int = 48,  # feature width of the body
        num_blocks: int = 8,  # residual blocks in the body
        res_scale: float = 1.0,  # residual branch multiplier (EDSR uses 0.1 for wide nets)
        band_mean: Sequence[float] | None = None,  # per-band reflectance mean used to normalise
        band_std: Sequence[float] | None = None,  # per-band reflectance std used to normalise
        progressive_upsampling: bool = False,  # EDSR x2 stages (slower) instead of one LR-size shuffle
    ) -> None:
        super().__init__()
        self.scale = scale
        register_band_statistics(self, in_channels, band_mean, band_std)
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels, res_scale) for _ in range(num_blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        if progressive_upsampling:
            self.upsample: nn.Sequential = nn.Sequential(
                PixelShuffleUpsampler(channels, scale), nn.Conv2d(channels, in_channels, 3, padding=1)
            )
        else:
            self.upsample = PixelShuffleUpsampler(channels, scale, in_channels, progressive=False)
        self.base = None if progressive_upsampling else BicubicPhases(in_channels, scale)

    def forward(self, lr: Tensor) -> Tensor:
        x = (lr - self.band_mean) / self.band_std
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))
        if self.base is not None:  # conv -> (residual + bicubic phases) -> one shuffle
            phases = self.upsample[0](feat) + self.base(x)
            out = F.pixel_shuffle(phases, self.scale)
        else:
            base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            out = base + self.upsample(feat)
        return out * self.band_std + self.band_mean
