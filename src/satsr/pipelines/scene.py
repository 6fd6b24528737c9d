"""The one path every entry point takes, from a scene to written blocks.

A scene is N co-registered stacks (revisits; N = 1 for one image) of C bands on one LR grid, read
window by window as reflectance with per-band validity: files through ``RasterReader`` (``RasterScene``),
arrays from memory (``ArrayScene``). ``run_scene`` shows the model every window with its masked values
filled by the one policy of ``satsr.io.masks`` (the median of the revisits that see a pixel, else the
scene's band means), streams it through ``satsr.io.stream``, and hands each finished HR block to a sink
with its validity: band by band, from the LR pixel under each HR pixel's centre, valid where any
revisit sees it. Whatever the entry point (file, folder, revisits, DataArray), the same scene gives
the same pixels next to nodata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from satsr.io.bands import ReflectanceScaling
from satsr.io.masks import band_means, decimation, fill_masked, usable_values
from satsr.io.raster import RasterReader
from satsr.io.stream import TileFn, upscale_stream
from satsr.io.tiling import Region, Tile, lr_pixels

Sink = Callable[[int, int, np.ndarray, np.ndarray], None]
"""Receives a final HR block ``(K * C, h, w)`` (K = 1, or 2: mean then std) at HR ``(row, col)`` and its
validity ``(C, h, w)``."""


class Scene(Protocol):
    """N stacks of C bands on one LR grid of ``height`` x ``width`` pixels, and the fill of its masked
    values (``fill``: the scene's band means, ``(C,)``)."""

    height: int
    width: int
    fill: np.ndarray

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance and per-band validity of a window, both ``(N, C, h, w)``."""
        ...

    def read_usable(self, tile: Tile) -> np.ndarray:
        """Per-band validity ``(N, C, h, w)`` of a window."""
        ...


class RasterScene:
    """Readers of one or more rasters on one grid (revisits put on the first one's grid).

    ``fill`` is the mean of the readers' band means (each from a decimated read); building it refuses a
    scene of which every pixel is nodata, before anything is written."""

    def __init__(self, readers: Sequence[RasterReader]) -> None:
        self.readers = list(readers)
        self.height, self.width = self.readers[0].meta.height, self.readers[0].meta.width
        self.fill = np.mean([r.band_means() for r in self.readers], axis=0).astype(np.float32)

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        window = Window(tile.col, tile.row, tile.width, tile.height)
        reads = [reader.read_bands(window) for reader in self.readers]
        return np.stack([values for values, _ in reads]), np.stack([usable for _, usable in reads])

    def read_usable(self, tile: Tile) -> np.ndarray:
        window = Window(tile.col, tile.row, tile.width, tile.height)
        return np.stack([reader.read_usable(window) for reader in self.readers])


class ArrayScene:
    """An in-memory LR array of raw values ``(C, h, w)`` at LR ``origin`` of a ``size`` scene (one chunk of a
    larger array, or all of it), masked where NaN or ``nodata`` and read through ``scaling``."""

    def __init__(
        self, values: np.ndarray, origin: tuple[int, int], size: tuple[int, int], fill: np.ndarray,
        nodata: float | None, scaling: ReflectanceScaling,
    ) -> None:  # fmt: skip
        self.usable = usable_values(np.asarray(values), nodata)
        self.reflectance = scaling.to_reflectance(np.where(self.usable, values, 0))
        (self.row, self.col), (self.height, self.width), self.fill = origin, size, fill

    def _crop(self, a: np.ndarray, tile: Tile) -> np.ndarray:
        top, left = tile.row - self.row, tile.col - self.col
        return a[None, :, top : top + tile.height, left : left + tile.width]

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        return self._crop(self.reflectance, tile), self._crop(self.usable, tile)

    def read_usable(self, tile: Tile) -> np.ndarray:
        return self._crop(self.usable, tile)


def array_band_means(values: Any, nodata: float | None, scaling: ReflectanceScaling, side: int) -> np.ndarray:
    """The ``fill`` of a whole (possibly lazy) array ``(C, H, W)`` as ``RasterReader.band_means`` computes it
    for a file: the band means of a decimated read (``satsr.io.masks.decimation``); raises when every
    value is masked."""
    _, height, width = values.shape
    picked = decimation(height, width, side)
    sample = np.asarray(values if picked is None else values[:, picked[0]][:, :, picked[1]])
    usable = usable_values(sample, nodata)
    if not usable.any() and not usable_values(np.asarray(values), nodata).any():
        raise ValueError("every pixel is nodata or NaN")
    return band_means(scaling.to_reflectance(np.where(usable, sample, 0)), usable)


def run_scene(
    scene: Scene,
    tile_fn: TileFn,
    scale: float,
    tile_size: int,
    overlap: int,
    sink: Sink,
    out_channels: int,
    **stream: Any,
) -> None:
    """Stream ``scene`` through ``tile_fn`` at ``scale`` (``satsr.io.stream.upscale_stream``, which takes
    the ``stream`` options: batch size, progress, checkpoint, executor, region) into ``sink``."""
    out_h, out_w = round(scene.height * scale), round(scene.width * scale)

    def read(tile: Tile) -> np.ndarray:
        values, usable = scene.read(tile)
        return fill_masked(values, usable, scene.fill).reshape(-1, tile.height, tile.width)

    def write(row: int, col: int, block: np.ndarray) -> None:
        _, h, w = block.shape
        rows, cols = lr_pixels(row, h, scene.height, out_h), lr_pixels(col, w, scene.width, out_w)
        window = Tile(int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
        usable = np.asarray(scene.read_usable(window).any(axis=0))
        sink(row, col, block, usable[:, rows - rows[0]][:, :, cols - cols[0]])

    upscale_stream(read, write, scene.height, scene.width, tile_fn, scale, tile_size, overlap,
                   out_channels=out_channels, **stream)  # fmt: skip


def array_sink(out: np.ndarray, region: Region) -> Sink:
    """Writes blocks into ``out`` (the HR ``region`` of the scene), NaN where not valid, cropped to it."""
    y0, y1, x0, x1 = region

    def sink(row: int, col: int, block: np.ndarray, valid: np.ndarray) -> None:
        _, h, w = block.shape
        top, left, bottom, right = max(row, y0), max(col, x0), min(row + h, y1), min(col + w, x1)
        if top < bottom and left < right:
            part = block[:, top - row : bottom - row, left - col : right - col]
            ok = valid[:, top - row : bottom - row, left - col : right - col]
            ok = np.tile(ok, (len(block) // len(valid), 1, 1))  # the mean's validity, and the std's
            out[:, top - y0 : bottom - y0, left - x0 : right - x0] = np.where(ok, part, np.float32(np.nan))

    return sink
