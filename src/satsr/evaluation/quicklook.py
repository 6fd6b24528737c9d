"""RGB quick-looks of reflectance rasters (the bands' colours: ``satsr.io.bands.rgb_channels``).

satsr's 4-band Sentinel-2 tensors hold the 10 m bands in the order B02, B03, B04, B08 (blue, green,
red, NIR; ``satsr.io.bands.S2_RGBN``), so the (R, G, B) channels are ``RGBN_RGB_CHANNELS = (2, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from satsr.io.bands import S2_RGBN, S2_TRUE_COLOUR

#: Channel indices of (red, green, blue) in a satsr B02, B03, B04, B08 tensor.
RGBN_RGB_CHANNELS = (2, 1, 0)
#: Default lower/upper percentiles of the quick-look contrast stretch.
DEFAULT_STRETCH = (2.0, 98.0)
_UINT8_MAX = 255


def rgb_from_s2(x: Tensor, bands: Sequence[str] = S2_RGBN) -> Tensor:
    """Select the (R, G, B) = (B04, B03, B02) channels of a (B, C, H, W) Sentinel-2 tensor.

    ``bands`` names the channels of ``x`` in order (default: satsr's B02, B03, B04, B08).
    """
    names = [band.upper() for band in bands]
    if x.ndim != 4 or x.shape[1] != len(names):
        raise ValueError(f"x of shape {tuple(x.shape)} does not have the {len(names)} bands {tuple(bands)}")
    missing = [band for band in S2_TRUE_COLOUR if band not in names]
    if missing:
        raise ValueError(f"bands {tuple(bands)} lack {missing} needed for a true-colour image")
    return x[:, [names.index(band) for band in S2_TRUE_COLOUR]]


def stretch_limits(
    x: np.ndarray,
    rgb: Sequence[int] = RGBN_RGB_CHANNELS,
    stretch: tuple[float, float] = DEFAULT_STRETCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) percentiles of the RGB channels of ``x`` (C, H, W), ignoring NaN.

    Compute them on a reference panel and pass them to :func:`to_quicklook_rgb` to give several
    panels the same stretch.
    """
    _check_chw(x, rgb)
    low_pct, high_pct = stretch
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"stretch must be percentiles 0 <= low < high <= 100, got {stretch}")
    channels = np.asarray(x, dtype=np.float64)[list(rgb)].reshape(len(rgb), -1)
    low = np.nanpercentile(channels, low_pct, axis=1)
    high = np.nanpercentile(channels, high_pct, axis=1)
    return low, high


def to_quicklook_rgb(
    x: np.ndarray,
    rgb: Sequence[int] = RGBN_RGB_CHANNELS,
    stretch: tuple[float, float] = DEFAULT_STRETCH,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """An 8-bit (H, W, 3) true-colour quick-look of a (C, H, W) reflectance array.

    Each RGB channel is linearly stretched between its ``stretch`` percentiles (or the given
    ``limits`` from :func:`stretch_limits`) and clipped. NaN means nodata, as in the nodata rule of the
    README: a pixel is black only where all three channels are NaN; a channel that is NaN alone (a band
    that is nodata where the others are not: saturated, or at a swath edge) is shown at the brightness
    of the pixel's other channels, so it does not turn a valid pixel black or take a false colour.
    """
    _check_chw(x, rgb)
    low, high = limits if limits is not None else stretch_limits(x, rgb, stretch)
    channels = np.asarray(x, dtype=np.float64)[list(rgb)]
    low = np.asarray(low, dtype=np.float64).reshape(-1, 1, 1)
    high = np.asarray(high, dtype=np.float64).reshape(-1, 1, 1)
    span = np.where(high > low, high - low, 1.0)  # a flat channel maps to black, not to NaN
    scaled = np.clip((channels - low) / span, 0.0, 1.0)
    missing = np.isnan(scaled)
    seen = (~missing).sum(axis=0)
    brightness = np.where(missing, 0.0, scaled).sum(axis=0) / np.maximum(seen, 1)
    scaled = np.where(missing, brightness, scaled)  # no channel seen: brightness 0, black
    return np.round(scaled * _UINT8_MAX).astype(np.uint8).transpose(1, 2, 0)


def _check_chw(x: np.ndarray, rgb: Sequence[int]) -> None:
    if x.ndim != 3:
        raise ValueError(f"expected a (C, H, W) array, got shape {x.shape}")
    if len(rgb) != 3 or any(not 0 <= index < x.shape[0] for index in rgb):
        raise ValueError(f"rgb must be three channel indices below {x.shape[0]}, got {tuple(rgb)}")
