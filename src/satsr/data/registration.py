"""Sub-pixel translation: registration by phase correlation (Guizar-Sicairos, Thurman & Fienup 2008,
"Efficient subpixel image registration algorithms", Opt. Lett. 33(2), the algorithm of
``skimage.registration.phase_cross_correlation``; adapted from scikit-image, BSD 3-Clause: its notice
ships as ``satsr/licenses/scikit-image-BSD-3-Clause.txt``). Used by the evaluation (``satsr.evaluation.
alignment``) and by multi-revisit fusion, which registers every revisit onto its anchor date.
``translate`` applies a translation (revisit simulation, multi-frame back-projection).
"""

from __future__ import annotations

import math

import numpy as np
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


def _cubic_weights(f: float, a: float = -0.75) -> list[float]:
    """The four taps (at -1, 0, 1, 2) of cubic convolution (``a`` = -0.75, as ``grid_sample``) at ``f``."""

    def near(t: float) -> float:  # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t: float) -> float:  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    return [far(1 + f), near(f), near(1 - f), far(2 - f)]


def _shift_axis(x: Tensor, shift: float, dim: int, mode: str) -> Tensor:
    """``x`` (B, C, H, W) moved by ``shift`` pixels along ``dim`` (-1 or -2): ``out[i] = x(i - shift)``,
    interpolated, taps beyond the border taking the edge value (``grid_sample``'s border padding): a
    weighted sum of four shifted views."""
    if shift == 0.0:
        return x
    size = x.shape[dim]
    whole = math.floor(-shift)
    frac = -shift - whole
    taps = _cubic_weights(frac) if mode == "bicubic" else [0.0, 1.0 - frac, frac, 0.0]
    pad = abs(whole) + 2
    start = whole - 1 + pad  # output i reads padded samples start + i .. start + i + 3
    if dim == -1:
        padded = F.pad(x, (pad, pad, 0, 0), mode="replicate")
        parts = [padded[..., start + t : start + t + size] for t in range(4)]
    else:
        padded = F.pad(x, (0, 0, pad, pad), mode="replicate")
        parts = [padded[..., start + t : start + t + size, :] for t in range(4)]
    out = parts[0] * taps[0]
    for part, tap in zip(parts[1:], taps[1:], strict=True):
        out.add_(part, alpha=tap)
    return out


def translate(x: Tensor, shift: tuple[float, float], mode: str = "bicubic") -> Tensor:
    """``x`` (B, C, H, W) moved by ``shift`` = (dy, dx) pixels, ``out[y, x] = x[y - dy, x - dx]`` (as
    ``scipy.ndimage.shift``), interpolated by ``mode`` ("bicubic" or "bilinear", ``grid_sample``'s
    kernels), edge values repeated beyond the border. Separable: a four-tap filter along each axis, the
    same values as ``grid_sample`` with border padding (tested) at about five times its speed."""
    if mode not in ("bicubic", "bilinear"):
        raise ValueError(f"translate interpolates bicubic or bilinear, got {mode!r}")
    return _shift_axis(_shift_axis(x, float(shift[0]), -2, mode), float(shift[1]), -1, mode)
