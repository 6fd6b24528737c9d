"""Full-reference image-quality metrics on reflectance tensors.

Every metric takes ``sr`` and ``hr`` shaped (B, C, H, W) and returns one value per image, shape (B,),
in float64. Reflectance may exceed 1, so ``data_range`` is an explicit argument where it matters.

``mask`` (where accepted) is a boolean tensor of VALID pixels, shaped (B, 1, H, W) (same mask for all
bands) or (B, C, H, W). Invalid pixels are left out of every mean; NaN in an invalid pixel does not
leak into the result. An image with no valid pixel yields NaN, never a silent zero.

``lr_grid_pattern`` is the exception: it needs no reference, only the LR grid the output was made on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: Gaussian window of SSIM (Wang et al. 2004, Sec. III-C).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
#: Stabilising constants C1 = (K1 L)^2, C2 = (K2 L)^2 of SSIM (Wang et al. 2004, Sec. III-B).
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Spectra with a norm below this are treated as undefined for the spectral angle.
_SAM_MIN_NORM = 1e-12


def _check_pair(sr: Tensor, hr: Tensor) -> None:
    if sr.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) tensors, got sr of shape {tuple(sr.shape)}")
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if not (sr.is_floating_point() and hr.is_floating_point()):
        raise TypeError(f"sr and hr must be floating point, got {sr.dtype} and {hr.dtype}")


def _expand_mask(mask: Tensor | None, like: Tensor) -> Tensor:
    """A boolean (B, C, H, W) validity mask; all-True when ``mask`` is None."""
    if mask is None:
        return torch.ones_like(like, dtype=torch.bool)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor of valid pixels, got {mask.dtype}")
    batch, channels, height, width = like.shape
    if mask.ndim != 4 or mask.shape[0] != batch or mask.shape[2:] != like.shape[2:]:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(like.shape)}"
        )
    if mask.shape[1] not in (1, channels):
        raise ValueError(f"mask needs 1 or {channels} channels, got {mask.shape[1]}")
    return mask.expand(batch, channels, height, width)


def _masked_mean(values: Tensor, valid: Tensor, dim: tuple[int, ...]) -> Tensor:
    """Mean of ``values`` over ``dim`` counting only ``valid`` entries (NaN where none is valid)."""
    total = torch.where(valid, values, torch.zeros_like(values)).sum(dim=dim)
    count = valid.sum(dim=dim).to(values.dtype)
    return total / count


def mse(sr: Tensor, hr: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error per image over bands and valid pixels, shape (B,)."""
    _check_pair(sr, hr)
    valid = _expand_mask(mask, sr)
    squared = (sr.double() - hr.double()) ** 2
    return _masked_mean(squared, valid, dim=(1, 2, 3))


def psnr(sr: Tensor, hr: Tensor, data_range: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, 10 log10(L^2 / MSE); +inf for identical images."""
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    error = mse(sr, hr, mask)
    return 10.0 * torch.log10(data_range**2 / error)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _separable_blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise 'valid' Gaussian filtering, as in the reference MATLAB ``ssim.m`` (``filter2 'valid'``)."""
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    x = F.conv2d(x, horizontal, groups=channels)
    return F.conv2d(x, vertical, groups=channels)


def ssim(sr: Tensor, hr: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity per image, shape (B,); Wang et al. 2004, Eq. 13.

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, 'valid' filtering (no padding);
    the SSIM map is averaged per band and the bands are averaged. Images must be at least
    ``SSIM_WINDOW`` pixels on each side.
    """
    _check_pair(sr, hr)
    if min(sr.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(sr.shape)}")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    x, y = sr.double(), hr.double()
    kernel = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, x.dtype, x.device)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _separable_blur(x, kernel), _separable_blur(y, kernel)
    var_x = _separable_blur(x * x, kernel) - mu_x**2
    var_y = _separable_blur(y * y, kernel) - mu_y**2
    cov_xy = _separable_blur(x * y, kernel) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    return (luminance * structure).mean(dim=(2, 3)).mean(dim=1)


def _pixel_mask(mask: Tensor | None, like: Tensor) -> Tensor:
    """A (B, H, W) mask of pixels whose every band is valid."""
    return _expand_mask(mask, like).all(dim=1)


def sam(sr: Tensor, hr: Tensor, mask: Tensor | None = None) -> Tensor:
    """Spectral angle mapper in degrees, mean over valid pixels, shape (B,); Kruse et al. 1993.

    The angle between the band vectors of ``sr`` and ``hr`` at each pixel. A pixel is used when all
    of its bands are valid and both spectra have a non-zero norm (the angle is undefined otherwise).
    """
    _check_pair(sr, hr)
    x, y = sr.double(), hr.double()
    norm_x, norm_y = x.norm(dim=1), y.norm(dim=1)
    valid = _pixel_mask(mask, sr) & (norm_x > _SAM_MIN_NORM) & (norm_y > _SAM_MIN_NORM)
    cosine = (x * y).sum(dim=1) / (norm_x * norm_y)
    angle = torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))
    return _masked_mean(angle, valid, dim=(1, 2))


def ergas(sr: Tensor, hr: Tensor, scale: float, mask: Tensor | None = None) -> Tensor:
    """ERGAS per image, shape (B,); Wald 2002, "Data Fusion: Definitions and Architectures".

    ``100 / scale * sqrt(mean_c (RMSE_c / mean(hr_c))^2)``, where ``scale`` is the ratio of the LR
    to the HR pixel size (e.g. 4 for 40 m -> 10 m). Bands with a zero HR mean make it infinite.
    """
    _check_pair(sr, hr)
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"scale must be a positive number, got {scale}")
    valid = _expand_mask(mask, sr)
    x, y = sr.double(), hr.double()
    rmse_band = torch.sqrt(_masked_mean((x - y) ** 2, valid, dim=(2, 3)))
    mean_band = _masked_mean(y, valid, dim=(2, 3))
    relative = (rmse_band / mean_band) ** 2
    return 100.0 / scale * torch.sqrt(relative.mean(dim=1))


#: Harmonics of the LR pixel frequency that ``lr_grid_pattern`` adds up.
GRID_HARMONICS = 3


def _phase_amplitude(gradient: Tensor, phase: Tensor, harmonics: int) -> Tensor:
    """Relative amplitude of ``gradient`` (B, ...) as a function of ``phase`` (in LR pixels, broadcast
    along the last axis): sqrt of the summed squared Fourier coefficients of harmonics 1..K, over the
    mean gradient."""
    total = gradient.sum(dim=(-2, -1))
    power = torch.zeros_like(total)
    for k in range(1, harmonics + 1):
        angle = 2 * math.pi * k * phase
        power = power + (gradient * torch.cos(angle)).sum(dim=(-2, -1)) ** 2
        power = power + (gradient * torch.sin(angle)).sum(dim=(-2, -1)) ** 2
    return torch.sqrt(power) / total


def lr_grid_pattern(sr: Tensor, lr_size: tuple[int, int], harmonics: int = GRID_HARMONICS) -> Tensor:
    """How much the detail of ``sr`` (B, C, H, W) is laid out in LR pixels, per image, shape (B,); 0: not.

    An upsampler that draws its detail per LR pixel (a cell pattern, "blobs" with edges on the LR grid)
    puts its edges at the same places within every LR pixel. So this takes the magnitude of the
    horizontal and vertical differences of the band mean, each at the LR coordinate of its midpoint
    (output pixel ``i`` of ``H`` is centred at ``(i + 0.5) * h / H``, as ``F.interpolate``), and
    measures how strongly it depends on the position within the LR pixel: the amplitude of its first
    ``harmonics`` Fourier components in that phase, relative to its mean (the two axes averaged).
    Only harmonics below the scale count (at x2 the midpoints sit at two phases, so the second
    harmonic cannot be told from the mean). A picture of the ground has edges at any phase (measured on
    aerial truth, x2-x8: 0.01-0.04; bicubic 0.03-0.06); ``N`` random differences give about
    ``1 / sqrt(N)``.
    Needs an output finer than its LR grid in both directions.
    """
    if sr.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(sr.shape)}")
    (h, w), (height, width) = lr_size, sr.shape[-2:]
    if not (0 < h < height and 0 < w < width):
        raise ValueError(f"an output of {height} x {width} pixels is not finer than an LR grid of {h} x {w}")
    scale = min(height / h, width / w)
    harmonics = min(harmonics, math.ceil(scale) - 1)
    g = sr.double().mean(dim=1)
    dx, dy = (g[..., :, 1:] - g[..., :, :-1]).abs(), (g[..., 1:, :] - g[..., :-1, :]).abs()
    cols = torch.arange(1, width, dtype=torch.float64, device=sr.device) * (w / width)
    rows = torch.arange(1, height, dtype=torch.float64, device=sr.device) * (h / height)
    across = _phase_amplitude(dx, cols - cols.floor(), harmonics)
    down = _phase_amplitude(dy.transpose(-2, -1), rows - rows.floor(), harmonics)
    return (across + down) / 2
