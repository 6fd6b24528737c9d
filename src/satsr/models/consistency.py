"""LR consistency: make a super-resolved image agree with its low-resolution input.

Iterative back-projection (Irani & Peleg 1991): the SR image is degraded with the sensor model,
the residual to the LR input is upsampled and added back, a few times. What the LR observed
(its low-frequency band) then comes from the LR itself, and the model contributes only the
detail the LR cannot see, so a generative model cannot shift colours or invent large structures
that the sensor would have recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.io.bands import is_sentinel2
from satsr.nn.blocks import bicubic_upscale

Degradation = Callable[[Tensor], Tensor]
"""HR (B, C, H, W) -> LR (B, C, H / scale, W / scale): the sensor model the LR came from."""

#: Back-projection rounds; the residual shrinks geometrically, three rounds leave < 1 % of it.
DEFAULT_ITERATIONS = 3


def sensor_degradation(scale: int, bands: Sequence[str] | None) -> Degradation:
    """Wald's S2-MTF degradation when the bands are named as Sentinel-2 bands (``is_sentinel2``),
    antialiased bicubic otherwise."""
    if bands is not None and is_sentinel2(bands):
        return lambda hr: wald_degrade(hr, scale, bands)
    return lambda hr: bicubic_degrade(hr, scale)


def project_to_lr(
    sr: Tensor, lr: Tensor, degrade: Degradation, iterations: int = DEFAULT_ITERATIONS
) -> Tensor:
    """Back-project ``sr`` (B, C, H, W) onto the images whose degradation is ``lr`` (B, C, h, w).

    Each round adds the bicubic upsampling of ``lr - degrade(sr)``; returns the corrected SR.
    """
    if sr.shape[:2] != lr.shape[:2]:
        raise ValueError(f"SR {tuple(sr.shape)} and LR {tuple(lr.shape)} differ in batch or bands")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    scale = sr.shape[-1] // lr.shape[-1]
    integer = sr.shape[-2:] == (lr.shape[-2] * scale, lr.shape[-1] * scale)
    for _ in range(iterations):
        residual = lr - degrade(sr)
        if integer:  # the same bicubic upsampling, computed at LR size
            sr = sr + bicubic_upscale(residual, scale)
        else:
            sr = sr + F.interpolate(residual, size=sr.shape[-2:], mode="bicubic", align_corners=False)
    return sr
