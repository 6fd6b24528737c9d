"""How masks travel, and the one policy for what a model is shown where a value is masked.

The nodata rule (rasterio's ``dataset_mask``, GDAL's ``UNIFIED_SRC_NODATA``): a pixel is nodata only
where every band is nodata (or NaN, or masked). A band that is nodata where the others are not keeps
that per-band validity, ``(C, h, w)``, from reading to writing. An output pixel takes its validity,
band by band, from the input pixel under its centre (``satsr.io.tiling.lr_pixels``); from a stack of
revisits, a band is valid where any revisit sees it.

The fill policy (``fill_masked``): a masked value is shown to the model as the median of that band
over the revisits that see the pixel, and where none does (always, for a single image) as the band's
mean over the scene (``band_means`` of a decimated read, ``decimation``). The fill only keeps
outliers from the network; those values are masked again in the output and never reach the user.
"""

from __future__ import annotations

import warnings

import numpy as np


def decimation(height: int, width: int, side: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows and columns of the pixel at the centre of each ``k`` x ``k`` cell, for the smallest whole
    factor ``k`` that brings the longer side to at most ``side`` (clipped to the raster at the far
    edges); None when the raster is that small already (``k`` = 1)."""
    factor = max(1, -(-max(height, width) // side))
    if factor == 1:
        return None
    rows = np.minimum(np.arange(-(-height // factor)) * factor + factor // 2, height - 1)
    cols = np.minimum(np.arange(-(-width // factor)) * factor + factor // 2, width - 1)
    return rows, cols


def band_means(reflectance: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Per-band mean of each band's usable values of ``(C, h, w)`` arrays; float32 ``(C,)``, 0 for a band
    with none."""
    return np.array(
        [band[ok].mean() if ok.any() else 0.0 for band, ok in zip(reflectance, usable, strict=True)],
        dtype=np.float32,
    )


def usable_values(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Per-band validity of raw values ``(C, h, w)``: not NaN or infinite, and not the nodata value."""
    usable = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if nodata is not None:
        usable &= values != nodata
    return usable


def fill_masked(values: np.ndarray, usable: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
    """Revisits ``(N, C, h, w)`` with every masked value (``usable`` False; ``(N, C, h, w)``, or ``(N, h, w)``
    for whole pixels) replaced by the fill policy: the median of that band over the revisits that see the
    pixel, else ``fill`` ``(C,)``, the scene's band means (default: those of the stack itself). One
    revisit (a single image) gets ``fill`` wherever it is masked."""
    values = np.asarray(values, np.float32)
    usable = np.broadcast_to(usable[:, None] if usable.ndim == values.ndim - 1 else usable, values.shape)
    if fill is None:
        channels = values.shape[1]
        fill = band_means(
            np.moveaxis(values, 1, 0).reshape(channels, -1), np.moveaxis(usable, 1, 0).reshape(channels, -1)
        )
    if len(values) == 1:  # no other revisit to take a median of
        return np.where(usable, values, fill[None, :, None, None]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # values no revisit sees stay NaN here
        median = np.nanmedian(np.where(usable, values, np.nan), axis=0)
    median = np.where(np.isfinite(median), median, fill[:, None, None])
    return np.where(usable, values, median[None]).astype(np.float32)
