"""Reading rasters as reflectance with an explicit per-band validity mask, window by window.

Any raster GDAL reads (GeoTIFF, JP2, VRT), a Sentinel-2 product or a STAC Item (``satsr.io.inputs``
opens them). Bands are picked by name (from the band descriptions) or by 1-based index. Nodata and NaN
never become numbers: they are returned as a mask, following the nodata rule of ``satsr.io.masks``.
Outputs are written by ``satsr.io.writer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from satsr.io.bands import ReflectanceScaling
from satsr.io.grid import Grid, RasterError, RasterMeta
from satsr.io.inputs import open_input
from satsr.io.masks import band_means, decimation
from satsr.io.safe import SCL_MASKED_CLASSES

#: Largest side of the decimated read used for per-band statistics of a whole raster.
STATS_READ_SIDE = 1024
#: Columns a decimated read reads at a time (a row of blocks that wide: ~40 MB for 4 bands of 256 rows).
DECIMATED_READ_WIDTH = 4096


class RasterReader:
    """An open raster read window by window as float32 reflectance plus a validity mask.

    ``read_bands`` gives each band's validity; ``read`` the pixels where every band is usable. Use as a
    context manager; ``read_raster`` reads a whole file at once.
    """

    def __init__(
        self,
        path: str | Path,
        bands: Sequence[str | int] | None = None,
        scaling: ReflectanceScaling | None = None,
        mask_clouds: bool = False,
        grid: Grid | None = None,
        more: Sequence[str | Path] = (),  # rasters with more bands of the scene (``open_input``)
    ) -> None:
        self.path = Path(path)
        opened = open_input(self.path, bands, scaling, mask_clouds, grid, [Path(p) for p in more])
        self.src, self.scl, self.indexes = opened.src, opened.scl, opened.indexes
        self.source_tags = opened.tags
        self.named = all(opened.names)  # every selected band has a name
        self.meta = RasterMeta(
            crs=self.src.crs, transform=self.src.transform, height=self.src.height, width=self.src.width,
            dtype=opened.dtype, nodata=self.src.nodata, scaling=opened.scaling,
            band_names=tuple(n or f"band{i}" for n, i in zip(opened.names, self.indexes, strict=True)),
        )  # fmt: skip

    def tags(self) -> dict[str, str]:
        """The raster's dataset tags, plus what a product's metadata says (acquisition date...)."""
        return dict(self.source_tags)

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.src.close()
        if self.scl is not None:
            self.scl.close()

    def read_bands(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(C, h, w)`` (0 where not usable) and per-band validity ``(C, h, w)`` of a window
        (default: all): False where that band is nodata, NaN or masked by GDAL, or the pixel is cloud."""
        shape = None if out_shape is None else (len(self.indexes), *out_shape)
        try:
            dn = self.src.read(self.indexes, window=window, out_shape=shape)
            masks = self.src.read_masks(self.indexes, window=window, out_shape=shape)
        except rasterio.errors.RasterioIOError as err:
            raise RasterError(f"{self.path}: cannot read pixels ({err})") from err
        usable = masks > 0
        if np.issubdtype(dn.dtype, np.floating):
            usable &= np.isfinite(dn)
        usable &= self._clear(window, out_shape)
        return self.meta.scaling.to_reflectance(np.where(usable, dn, 0)), usable

    def read(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(C, h, w)`` (0 where invalid) and ``(h, w)``: True where every band is usable
        (complete pixels, what training and evaluation pairs need); ``read_bands`` keeps each band's."""
        reflectance, usable = self.read_bands(window, out_shape)
        complete = np.asarray(usable.all(axis=0))
        return np.where(complete, reflectance, np.float32(0)), complete

    def _clear(self, window: Window | None, out_shape: tuple[int, int] | None = None) -> np.ndarray | bool:
        """Where the scene classification shows no cloud, shadow or cirrus (True without masking)."""
        if self.scl is None:
            return True
        scl = self.scl.read(1, window=window, out_shape=out_shape)
        return ~np.isin(scl, SCL_MASKED_CLASSES)

    def read_usable(self, window: Window) -> np.ndarray:
        """Per-band validity ``(C, h, w)`` of a window, as ``read_bands`` gives it (pixel values are read
        only for float rasters)."""
        usable = self.src.read_masks(self.indexes, window=window) > 0
        if np.issubdtype(self.meta.dtype, np.floating):
            usable &= np.isfinite(self.src.read(self.indexes, window=window))
        return usable & self._clear(window)

    def read_valid(self, window: Window) -> np.ndarray:
        """``(h, w)``: True where every band of the window is usable (``read``'s mask)."""
        return np.asarray(self.read_usable(window).all(axis=0))

    def read_decimated(self, side: int, per_band: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``read()`` of the whole raster decimated by a whole factor so its longer side is <= ``side``
        (the pixels ``satsr.io.masks.decimation`` picks); ``per_band``: ``read_bands()`` instead, with
        its ``(C, h, w)`` validity.

        Read at full resolution, one row of blocks and at most ``DECIMATED_READ_WIDTH`` columns at a
        time, then subsampled: GDAL's decimating read (``out_shape``) of a compressed tiled GeoTIFF
        measured about 50 times slower, and reading single rows 20 times slower.
        """
        read = self.read_bands if per_band else self.read
        picked = decimation(self.meta.height, self.meta.width, side)
        if picked is None:
            return read()
        rows, cols = picked
        block_h, block_w = self.src.block_shapes[0]
        span = max(1, DECIMATED_READ_WIDTH // block_w) * block_w  # whole blocks per window
        strips = []
        for group in np.split(rows, np.flatnonzero(np.diff(rows // block_h)) + 1):  # by row of blocks
            top, parts = int(group[0]), []
            for left in range(0, self.meta.width, span):
                in_span = cols[(cols >= left) & (cols < left + span)]
                window = Window(left, top, min(span, self.meta.width - left), int(group[-1]) - top + 1)
                parts.append(tuple(a[..., in_span - left] for a in read(window)))
            strips.append([np.concatenate(p, axis=-1)[..., group - top, :] for p in zip(*parts, strict=True)])
        reflectance, valid = (np.concatenate(a, axis=-2) for a in zip(*strips, strict=True))
        return reflectance, valid

    def band_means(self) -> np.ndarray:
        """Per-band mean reflectance of each band's valid values, from a decimated read; float32 ``(C,)``
        (0 for a band with none seen): the fill of ``satsr.io.masks``.

        Raises ``RasterError`` when no pixel is valid (checked window by window if the decimated
        read sees none, so a small valid patch is never missed).
        """
        reflectance, usable = self.read_decimated(STATS_READ_SIDE, per_band=True)
        if not usable.any():
            for _, window in self.src.block_windows(1):
                reflectance, usable = self.read_bands(window)
                if usable.any():
                    break
            else:
                raise RasterError(f"{self.path}: every pixel is nodata or NaN")
        return band_means(reflectance, usable)


def read_raster(
    path: str | Path, bands: Sequence[str | int] | None = None, scaling: ReflectanceScaling | None = None
) -> tuple[np.ndarray, np.ndarray, RasterMeta]:
    """Read bands as float32 reflectance (C, H, W) plus a boolean validity mask (H, W)."""
    with RasterReader(path, bands, scaling) as reader:
        reflectance, valid = reader.read()
    if not valid.any():
        raise RasterError(f"{path}: every pixel is nodata or NaN")
    return reflectance, valid, reader.meta
