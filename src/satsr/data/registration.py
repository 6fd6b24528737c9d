"""Sub-pixel translation: registration by phase correlation (Guizar-Sicairos, Thurman & Fienup 2008,
"Efficient subpixel image registration algorithms", Opt. Lett. 33(2), the algorithm of
``skimage.registration.phase_cross_correlation``; adapted from scikit-image, BSD 3-Clause: its notice
ships as ``satsr/licenses/scikit-image-BSD-3-Clause.txt``). Used by the evaluation (``satsr.evaluation.
alignment``) and by multi-revisit fusion, which registers every revisit onto its anchor date.
``translate`` applies a translation (revisit simulation, multi-frame back-projection).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Sub-pixel precision of the registration: 1 / 50 pixel (satalign's PCC default).
DEFAULT_UPSAMPLE_FACTOR = 50
#: Side of the upsampled cross-correlation neighbourhood, in original pixels (Guizar-Sicairos 2008).
_REFINE_REGION_PX = 1.5
#: Guards the normalisation of the cross-power spectrum.
_SPECTRUM_EPS = 100 * np.finfo(np.float64).eps


def _upsampled_dft(
    data: np.ndarray, region_size: int, upsample_factor: int, offsets: np.ndarray
) -> np.ndarray:
    """Matrix-multiply DFT of ``data`` on a ``region_size``^2 grid, ``upsample_factor`` times finer."""
    for n_items, offset in zip(data.shape[::-1], offsets[::-1], strict=True):
        frequencies = np.fft.fftfreq(n_items, upsample_factor)
        kernel = np.exp(-2j * np.pi * (np.arange(region_size) - offset)[:, None] * frequencies)
        data = np.tensordot(kernel, data, axes=(1, -1))
    return data


def phase_correlation_shift(
    reference: np.ndarray, moving: np.ndarray, upsample_factor: int = DEFAULT_UPSAMPLE_FACTOR
) -> np.ndarray:
    """The (dy, dx) translation that registers ``moving`` onto ``reference`` (2-D arrays).

    Phase correlation: the peak of the inverse FFT of the normalised cross-power spectrum gives
    the integer shift, refined to ``1 / upsample_factor`` pixel with a local upsampled DFT
    (Guizar-Sicairos et al. 2008). If ``moving(x) = reference(x - s)`` the result is ``-s``.
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(f"expected two 2-D arrays of one shape, got {reference.shape} and {moving.shape}")
    if upsample_factor < 1:
        raise ValueError(f"upsample_factor must be at least 1, got {upsample_factor}")
    product = np.fft.fft2(reference) * np.fft.fft2(moving).conj()
    product /= np.maximum(np.abs(product), _SPECTRUM_EPS)
    correlation = np.fft.ifft2(product)
    shape = np.array(correlation.shape)
    peak = np.array(np.unravel_index(np.argmax(np.abs(correlation)), correlation.shape), dtype=np.float64)
    shifts = np.where(peak > np.fix(shape / 2), peak - shape, peak)
    if upsample_factor == 1:
        return shifts
    region_size = int(np.ceil(upsample_factor * _REFINE_REGION_PX))
    centre = np.fix(region_size / 2)
    shifts = np.round(shifts * upsample_factor) / upsample_factor
    offsets = centre - shifts * upsample_factor
    refined = _upsampled_dft(product.conj(), region_size, upsample_factor, offsets).conj()
    fine_peak = np.array(np.unravel_index(np.argmax(np.abs(refined)), refined.shape), dtype=np.float64)
    return shifts + (fine_peak - centre) / upsample_factor


def translate(x: Tensor, shift: tuple[float, float], mode: str = "bicubic") -> Tensor:
    """``x`` (B, C, H, W) moved by ``shift`` = (dy, dx) pixels, ``out[y, x] = x[y - dy, x - dx]`` (as
    ``scipy.ndimage.shift``), interpolated by ``mode`` (``grid_sample``'s), edge values repeated beyond
    the border."""
    if shift == (0.0, 0.0):
        return x
    height, width = x.shape[-2:]
    ys = (2 * (torch.arange(height, device=x.device, dtype=x.dtype) - shift[0]) + 1) / height - 1
    xs = (2 * (torch.arange(width, device=x.device, dtype=x.dtype) - shift[1]) + 1) / width - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)
    grid = grid[None].expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
