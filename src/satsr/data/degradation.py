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


def _decimating_kernels(sigmas: Sequence[float], scale: int) -> tuple[Tensor, int]:
    """1-D kernels (C, 1, K) that blur and take the decimated sample of one axis in one strided pass.

    The sample of LR pixel i is the blurred value at HR position ``scale * i + scale // 2`` (odd
    scales) or the mean of those at ``scale * i + scale // 2 - 1`` and ``+ scale // 2`` (even ones, so
    the sampling stays centred); each kernel is that combination of shifted Gaussians, zero-padded to
    one common radius ``R`` (returned) so that all bands share one reflect padding.
    """
    kernels = [gaussian_kernel1d(sigma) for sigma in sigmas]
    radius = max(k.numel() // 2 for k in kernels) + 1
    rows = torch.zeros(len(kernels), 2 * radius + 1)
    offsets = (0, 1) if scale % 2 == 0 else (0,)
    for c, kernel in enumerate(kernels):
        r = kernel.numel() // 2
        for shift in offsets:  # the tap at index radius + shift is HR position scale * i + start + shift
            rows[c, radius + shift - r : radius + shift + r + 1] += kernel / len(offsets)
    return rows[:, None, :], radius


def wald_degrade(hr: Tensor, scale: int, bands: Sequence[str]) -> Tensor:
    """Wald's protocol: S2-MTF-matched Gaussian blur per band, then decimation by ``scale``.

    Decimation takes the sample at the centre of every ``scale`` x ``scale`` block (for even
    scales, the mean of the four central samples), so the LR grid is aligned with the HR block
    grid: LR pixel (i, j) covers HR pixels [i*scale, (i+1)*scale). The blur (reflect padding, as
    ``gaussian_blur``) is evaluated only at the samples kept: two strided separable passes.
    """
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not a multiple of scale {scale}")
    sigmas = [mtf_gaussian_sigma(S2_BANDS[b].mtf_nyquist, scale) for b in bands]
    if len(sigmas) != hr.shape[1]:
        raise ValueError(f"need one band name per channel: {len(sigmas)} names for {hr.shape[1]} channels")
    kernels, radius = _decimating_kernels(sigmas, scale)
    kernels = kernels.to(hr)
    start = scale // 2 - 1 if scale % 2 == 0 else scale // 2  # HR position of LR pixel 0's first sample
    channels = hr.shape[1]
    # Pad so that output i's window starts at scale * i + start - radius in the original image.
    x = F.pad(hr, (radius, radius, radius, radius), mode="reflect")
    x = x[..., start : x.shape[-2] - (scale - 1 - start), start : x.shape[-1] - (scale - 1 - start)]
    x = F.conv2d(x, kernels[:, :, None, :], stride=(1, scale), groups=channels)
    return F.conv2d(x, kernels[:, :, :, None], stride=(scale, 1), groups=channels)


def bicubic_degrade(hr: Tensor, scale: float) -> Tensor:
    """Antialiased bicubic downsampling to round(size / scale)."""
    h, w = hr.shape[-2:]
    size = (max(1, round(h / scale)), max(1, round(w / scale)))
    return F.interpolate(hr, size=size, mode="bicubic", antialias=True, align_corners=False)
