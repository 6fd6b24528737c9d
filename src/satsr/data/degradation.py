"""Degradations that turn high-resolution images into low-resolution inputs.

* Wald's protocol (Wald et al. 1997) for Sentinel-2: blur every band with a Gaussian whose
  frequency response at the target Nyquist frequency equals the band's MTF, then decimate.
* Bicubic (antialiased) downsampling for aerial imagery, as in E2DiffSR and LIIF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from satsr.io.bands import S2_BANDS


def mtf_gaussian_sigma(mtf_nyquist: float, scale: float) -> float:
    """Std (in HR pixels) of a Gaussian whose MTF at the LR Nyquist frequency is ``mtf_nyquist``.

    A Gaussian with std sigma has frequency response exp(-2 pi^2 sigma^2 f^2). The Nyquist
    frequency of the decimated grid is f = 1 / (2 scale) cycles per HR pixel, so
    sigma = scale * sqrt(-2 ln mtf) / pi.
    """
    if not 0.0 < mtf_nyquist < 1.0:
        raise ValueError(f"MTF at Nyquist must be in (0, 1), got {mtf_nyquist}")
    return scale * math.sqrt(-2.0 * math.log(mtf_nyquist)) / math.pi


def gaussian_kernel1d(sigma: float, truncate: float = 3.0) -> Tensor:
    radius = max(1, math.ceil(truncate * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).float()


def gaussian_blur(x: Tensor, sigmas: Sequence[float]) -> Tensor:
    """Separable per-channel Gaussian blur of (B, C, H, W) with reflect padding."""
    if len(sigmas) != x.shape[1]:
        raise ValueError(f"need one sigma per channel: {len(sigmas)} sigmas for {x.shape[1]} channels")
    out = []
    for c, sigma in enumerate(sigmas):
        k = gaussian_kernel1d(sigma).to(x)
        r = k.numel() // 2
        band = x[:, c : c + 1]
        band = F.conv2d(F.pad(band, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        band = F.conv2d(F.pad(band, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        out.append(band)
    return torch.cat(out, dim=1)


def wald_degrade(hr: Tensor, scale: int, bands: Sequence[str]) -> Tensor:
    """Wald's protocol: S2-MTF-matched Gaussian blur per band, then decimation by ``scale``.

    Decimation takes the sample at the centre of every ``scale`` x ``scale`` block (for even
    scales, the mean of the four central samples), so the LR grid is aligned with the HR
    block grid: LR pixel (i, j) covers HR pixels [i*scale, (i+1)*scale).
    """
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not a multiple of scale {scale}")
    sigmas = [mtf_gaussian_sigma(S2_BANDS[b].mtf_nyquist, scale) for b in bands]
    blurred = gaussian_blur(hr, sigmas)
    # Averaging over each block after the blur shifts nothing and keeps the sampling centred.
    if scale % 2 == 0:
        half = scale // 2
        centre = blurred[..., half - 1 :: scale, half - 1 :: scale] + blurred[..., half::scale, half::scale]
        centre = (
            centre
            + blurred[..., half - 1 :: scale, half::scale]
            + blurred[..., half::scale, half - 1 :: scale]
        )
        return centre / 4
    return blurred[..., scale // 2 :: scale, scale // 2 :: scale]


def bicubic_degrade(hr: Tensor, scale: float) -> Tensor:
    """Antialiased bicubic downsampling to round(size / scale)."""
    h, w = hr.shape[-2:]
    size = (max(1, round(h / scale)), max(1, round(w / scale)))
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False)
