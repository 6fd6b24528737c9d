"""Removing systematic errors before comparing an SR image with its reference.

Per-band histogram matching (the cumulative-distribution matching of ``skimage.exposure.
match_histograms``) and sub-pixel translation registration by phase correlation (Guizar-Sicairos,
Thurman & Fienup 2008, "Efficient subpixel image registration algorithms", Opt. Lett. 33(2), the
algorithm of ``skimage.registration.phase_cross_correlation``, in ``satsr.data.registration``).
Together they build the "harmonised" SR of opensr-test (Aybar et al. 2024), which is then compared to
the HR so that only high-frequency content, not a global bias or shift, is scored. Adapted from
scikit-image (BSD 3-Clause): its notice ships as ``satsr/licenses/scikit-image-BSD-3-Clause.txt``.

Functions work on single images as numpy arrays, (C, H, W) or (H, W), in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from satsr.data.registration import DEFAULT_UPSAMPLE_FACTOR, phase_correlation_shift

__all__ = [  # phase correlation lives in satsr.data.registration (fusion uses it too) and is re-exported
    "DEFAULT_MAX_SHIFT", "DEFAULT_UPSAMPLE_FACTOR", "apply_shift", "harmonize", "histogram_match",
    "phase_correlation_shift", "registration_layer",
]  # fmt: skip

#: Shifts longer than this (pixels) are deemed implausible and not applied (satalign default).
DEFAULT_MAX_SHIFT = 5.0


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
