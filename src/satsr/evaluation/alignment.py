"""Removing systematic errors before comparing an SR image with its reference.

Per-band histogram matching (the cumulative-distribution matching of ``skimage.exposure.
match_histograms``) and sub-pixel translation registration by phase correlation (Guizar-Sicairos,
Thurman & Fienup 2008, "Efficient subpixel image registration algorithms", Opt. Lett. 33(2), the
algorithm of ``skimage.registration.phase_cross_correlation``). Together they build the
"harmonised" SR of opensr-test (Aybar et al. 2024), which is then compared to the HR so that only
high-frequency content, not a global bias or shift, is scored. Adapted from scikit-image (BSD
3-Clause): its notice ships as ``satsr/licenses/scikit-image-BSD-3-Clause.txt``.

Functions work on single images as numpy arrays, (C, H, W) or (H, W), in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Sub-pixel precision of the registration: 1 / 50 pixel (satalign's PCC default).
DEFAULT_UPSAMPLE_FACTOR = 50
#: Shifts longer than this (pixels) are deemed implausible and not applied (satalign default).
DEFAULT_MAX_SHIFT = 5.0
#: Side of the upsampled cross-correlation neighbourhood, in original pixels (Guizar-Sicairos 2008).
_REFINE_REGION_PX = 1.5
#: Guards the normalisation of the cross-power spectrum.
_SPECTRUM_EPS = 100 * np.finfo(np.float64).eps


def histogram_match(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Match the value distribution of each band of ``source`` to the same band of ``reference``.

    Each source value is replaced by the reference value at the same empirical quantile (linear
    interpolation between reference quantiles), band by band; the arrays may differ in size.
    """
    if source.ndim != reference.ndim or source.ndim not in (2, 3):
        raise ValueError(f"expected (C, H, W) or (H, W) arrays, got {source.shape} and {reference.shape}")
    if source.ndim == 2:
        return _match_band(source, reference)
    if source.shape[0] != reference.shape[0]:
        raise ValueError(f"band counts differ: {source.shape[0]} vs {reference.shape[0]}")
    return np.stack([_match_band(src, ref) for src, ref in zip(source, reference, strict=True)])


def _match_band(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    _, src_index, src_counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    src_quantiles = np.cumsum(src_counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    matched = np.interp(src_quantiles, ref_quantiles, ref_values)
    return matched[src_index].reshape(source.shape)


def registration_layer(image: np.ndarray, rgb: Sequence[int] | None = None) -> np.ndarray:
    """The single band used for registration: the mean of all bands (satalign's PCC default, which
    opensr-test uses), or of the bands ``rgb`` when given and the image has more than that many."""
    if image.ndim == 2:
        return image
    layer = image[list(rgb)] if rgb is not None and image.shape[0] > len(rgb) else image
    return layer.mean(axis=0)


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


def apply_shift(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Translate each band of ``image`` (C, H, W) by ``shift`` = (dy, dx): bilinear, edges replicated."""
    if not np.any(shift):
        return image.copy()
    return np.stack([ndimage.shift(band, shift, order=1, mode="nearest") for band in image])


def harmonize(
    sr: np.ndarray,
    hr: np.ndarray,
    rgb: Sequence[int] | None = None,
    max_shift: float = DEFAULT_MAX_SHIFT,
    upsample_factor: int = DEFAULT_UPSAMPLE_FACTOR,
) -> np.ndarray:
    """opensr-test's ``sr_harm``: ``sr`` (C, H, W) histogram-matched to ``hr`` band by band, then
    translated onto ``hr`` by phase correlation unless the shift exceeds ``max_shift`` pixels.
    """
    if sr.shape != hr.shape or sr.ndim != 3:
        raise ValueError(f"sr and hr must be (C, H, W) arrays of one shape, got {sr.shape} and {hr.shape}")
    matched = histogram_match(sr, hr)
    shift = phase_correlation_shift(
        registration_layer(hr, rgb), registration_layer(matched, rgb), upsample_factor
    )
    if np.hypot(*shift) > max_shift:
        return matched
    return apply_shift(matched, shift)
