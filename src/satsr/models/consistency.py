"""LR consistency: make a super-resolved image agree with its low-resolution input.

Iterative back-projection (Irani & Peleg 1991): the SR image is degraded with the sensor model,
the residual to the LR input is upsampled and added back, a few times. What the LR observed
(its low-frequency band) then comes from the LR itself, and the model contributes only the
detail the LR cannot see, so a generative model cannot shift colours or invent large structures
that the sensor would have recorded.

``project_to_revisits`` is Irani & Peleg's multi-frame form: several LR images of one place, each
sampled on a grid shifted by a fraction of a pixel, each see a little of what the others alias away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.data.registration import translate
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


def project_to_revisits(
    sr: Tensor,
    lrs: Tensor,
    shifts: Sequence[tuple[float, float]],
    weights: Tensor,
    degrade: Degradation,
    iterations: int = DEFAULT_ITERATIONS,
) -> Tensor:
    """Multi-frame back-projection of ``sr`` (1, C, H, W) onto ``lrs`` (N, C, h, w): LR images of the
    same place on their own grids, in ``sr``'s radiometry, revisit ``i`` sampled where ``sr``'s LR
    grid moved by ``-shifts[i]`` (LR pixels; ``shifts[i]`` moves revisit ``i`` onto ``sr``'s grid,
    as ``satsr.data.revisit_weights.AlignedRevisits.shifts``). Each round adds the ``weights``-weighted
    (N, h, w, on ``sr``'s LR grid) mean of every revisit's upsampled residual, moved back onto
    ``sr``'s grid."""
    if lrs.ndim != 4 or sr.shape[:2] != (1, lrs.shape[1]) or len(shifts) != len(lrs):
        raise ValueError(f"expected SR (1, C, H, W), N revisits (N, C, h, w) and N shifts, got "
                         f"{tuple(sr.shape)}, {tuple(lrs.shape)} and {len(shifts)}")  # fmt: skip
    if weights.shape != (len(lrs), *lrs.shape[-2:]):
        raise ValueError(f"expected weights {(len(lrs), *lrs.shape[-2:])}, got {tuple(weights.shape)}")
    scale = sr.shape[-1] // lrs.shape[-1]
    hr_weights = F.interpolate(weights[:, None].to(sr.dtype), size=sr.shape[-2:], mode="nearest")
    total = hr_weights.sum(0, keepdim=True).clamp_min(1e-6)
    hr_shifts = [(scale * dy, scale * dx) for dy, dx in shifts]
    for _ in range(iterations):
        seen = degrade(torch.cat([translate(sr, (-dy, -dx)) for dy, dx in hr_shifts]))
        residual = bicubic_upscale(lrs.to(sr.dtype) - seen, scale)
        back = torch.cat([translate(r[None], s) for r, s in zip(residual, hr_shifts, strict=True)])
        sr = sr + (hr_weights * back).sum(0, keepdim=True) / total
    return sr


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
