"""Overlapping tiles over a low-resolution image: the windows, their HR footprints and how they blend.

A large scene is cut into ``tile_size`` windows that overlap by ``overlap`` LR pixels; each window is
upscaled by the model and the HR outputs are averaged with separable weights that ramp from a small
positive value to 1 across the overlap, so neighbouring tiles cross-fade instead of leaving seams.
``StreamPlan`` is that plan for a whole scene at an integer or real scale; ``satsr.io.blending`` blends
by it and ``satsr.io.stream`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

Ramp = Literal["cosine", "linear"]
"""Shape of the blending ramp across an overlap."""

DEFAULT_RAMP: Ramp = "cosine"
#: An HR region ``(row start, row end, column start, column end)``, ends exclusive.
Region = tuple[int, int, int, int]
#: A window of a plan and its place in it: ``(row index, column index, window)``.
Placed = tuple[int, int, "Tile"]


@dataclass(frozen=True)
class Tile:
    """A window of a low-resolution image, in LR pixels."""

    row: int
    col: int
    height: int
    width: int


def _axis_starts(size: int, tile_size: int, stride: int) -> list[int]:
    """Window starts along one axis; the last window is shifted to end exactly at ``size``."""
    if size <= tile_size:
        return [0]
    last = size - tile_size
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _validate_tiling(tile_size: int, overlap: int) -> None:
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile_size ({tile_size}), got {overlap}")


def tile_grid(height: int, width: int, tile_size: int, overlap: int) -> list[Tile]:
    """Overlapping windows covering a ``height`` x ``width`` image, row-major.

    The stride is ``tile_size - overlap``; the last window in each axis ends at the image edge, and an
    axis shorter than ``tile_size`` gets a single window spanning the whole axis.
    """
    _validate_tiling(tile_size, overlap)
    if height < 1 or width < 1:
        raise ValueError(f"image must be non-empty, got {height}x{width}")
    stride = tile_size - overlap
    tile_h, tile_w = min(tile_size, height), min(tile_size, width)
    return [
        Tile(row=row, col=col, height=tile_h, width=tile_w)
        for row in _axis_starts(height, tile_size, stride)
        for col in _axis_starts(width, tile_size, stride)
    ]


def _ramp(n: int, ramp: Ramp) -> np.ndarray:
    """Increasing weights in (0, 1) over ``n`` samples, sampled at pixel centres."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    if ramp == "cosine":
        return 0.5 - 0.5 * np.cos(np.pi * t)
    if ramp == "linear":
        return t
    raise ValueError(f"ramp must be 'cosine' or 'linear', got {ramp!r}")


def _axis_weights(length: int, n_ramp: int, ramp_start: bool, ramp_end: bool, ramp: Ramp) -> np.ndarray:
    """1-D weights of ``length`` HR pixels, ramped over ``n_ramp`` pixels on the inner sides."""
    weights = np.ones(length, dtype=np.float64)
    n = min(n_ramp, length)
    if n == 0:
        return weights
    up = _ramp(n, ramp)
    if ramp_start:
        weights[:n] = np.minimum(weights[:n], up)
    if ramp_end:
        weights[length - n :] = np.minimum(weights[length - n :], up[::-1])
    return weights


def blend_weights(
    tile: Tile, height: int, width: int, scale: int, overlap: int, ramp: Ramp = DEFAULT_RAMP
) -> np.ndarray:
    """Separable float32 weights ``(tile.height * scale, tile.width * scale)`` for a tile's HR footprint.

    Sides touching the image border (``height`` x ``width`` in LR pixels) keep weight 1; inner sides
    ramp over ``overlap * scale`` HR pixels from a small positive value up to 1, so weights never vanish.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    n_ramp = overlap * scale
    rows = _axis_weights(tile.height * scale, n_ramp, tile.row > 0, tile.row + tile.height < height, ramp)
    cols = _axis_weights(tile.width * scale, n_ramp, tile.col > 0, tile.col + tile.width < width, ramp)
    return np.outer(rows, cols).astype(np.float32)


def hr_index(lr: int, size: int, out: int) -> int:
    """The HR pixel border at LR pixel border ``lr`` of an axis of ``size`` LR and ``out`` HR pixels: the
    first HR pixel whose centre is at or past LR coordinate ``lr``, ``ceil(lr * out / size - 1/2)`` in
    integer arithmetic (exactly ``lr * scale`` for an integer scale). So a window computes exactly the HR
    pixels whose centres lie in its LR pixels, the ones ``lr_pixels`` takes their validity from (a
    centre on an LR border belongs to the pixel after it)."""
    return -((size - 2 * lr * out) // (2 * size))


def hr_extent(lr_length: int, size: int, out: int) -> int:
    """HR pixels a model returns for an LR window of ``lr_length``: ``lr_length * scale`` for an integer
    scale; for a real one, enough for any window of that length wherever it starts on the HR grid."""
    if out % size == 0:
        return lr_length * (out // size)
    return -(-lr_length * out // size) + 1


def lr_pixels(hr_start: int, count: int, size: int, out: int) -> np.ndarray:
    """The LR pixel holding the centre of each of ``count`` HR pixels from ``hr_start`` on an axis of
    ``size`` LR and ``out`` HR pixels (where an output pixel takes its validity from): (count,)."""
    return (2 * np.arange(hr_start, hr_start + count) + 1) * size // (2 * out)


def lr_coordinates(hr_start: int, count: int, size: int, out: int, lr_origin: int) -> np.ndarray:
    """LR coordinates (pixel ``i`` spans ``[i, i + 1)``), relative to ``lr_origin``, of the centres of
    ``count`` HR pixels from ``hr_start`` on an axis of ``size`` LR and ``out`` HR pixels: (count,)."""
    return (np.arange(hr_start, hr_start + count, dtype=np.float64) + 0.5) * (size / out) - lr_origin


@dataclass(frozen=True)
class _AxisPlan:
    """Blending along one axis: per-window 1-D weights, their sum, and the HR cells the windows cut.

    Windows along an axis cut the HR axis into cells at every window start and end; each cell is
    covered by a fixed set of windows, and is final once the last of them (``last``) has run.
    Because the 2-D weights are outer products, the 2-D weight sum is the outer product of the
    two 1-D sums, so no weight image is ever accumulated. With a real scale, windows of one LR
    length may differ by one HR pixel.
    """

    starts: list[int]  # window starts, HR pixels
    ends: list[int]  # window ends, HR pixels
    weights: list[np.ndarray]  # per window, (end - start,) float64
    weight_sum: np.ndarray  # (out,) float64
    cells: list[tuple[int, int]]  # [lo, hi) HR pixel ranges
    last: list[int]  # per cell, the index of the last window covering it

    @classmethod
    def build(
        cls, lr_starts: list[int], lr_length: int, size: int, out: int, overlap: int, ramp: Ramp
    ) -> _AxisPlan:
        starts = [hr_index(s, size, out) for s in lr_starts]
        ends = [hr_index(s + lr_length, size, out) for s in lr_starts]
        n_ramp = hr_index(overlap, size, out)
        weights = [
            _axis_weights(e - h, n_ramp, s > 0, s + lr_length < size, ramp)
            for s, h, e in zip(lr_starts, starts, ends, strict=True)
        ]
        weight_sum = np.zeros(out, dtype=np.float64)
        for h, e, w in zip(starts, ends, weights, strict=True):
            weight_sum[h:e] += w
        bounds = sorted({*starts, *ends})
        cells = list(pairwise(bounds))
        last = [
            max(i for i, (h, e) in enumerate(zip(starts, ends, strict=True)) if h <= lo and hi <= e)
            for lo, hi in cells
        ]
        return cls(starts, ends, weights, weight_sum, cells, last)

    def length(self, index: int) -> int:
        return self.ends[index] - self.starts[index]

    def cells_of(self, index: int, span: tuple[int, int] | None = None) -> list[int]:
        """Indexes of the cells window ``index`` covers (that meet the HR ``span`` [start, end), if given)."""
        lo, hi = self.starts[index], self.ends[index]
        return [
            k
            for k, (a, b) in enumerate(self.cells)
            if lo <= a and b <= hi and (span is None or (a < span[1] and b > span[0]))
        ]

    def meets(self, index: int, start: int, end: int) -> bool:
        """Whether window ``index``'s HR footprint meets the HR span [start, end)."""
        return self.starts[index] < end and self.ends[index] > start


def fit_tiling(tile_size: int, overlap: int, height: int, width: int, multiple: int = 1) -> tuple[int, int]:
    """The window side and overlap for an image (after checking the requested ones): ``tile_size``, or
    the image's longer side where that is shorter, so a small image runs as one window of its own
    size instead of being padded up to ``tile_size`` (and the overlap, unused then, is kept below it);
    then in whole ``multiple``s of pixels (``align_tiling``: a model's ``grid_multiple``)."""
    _validate_tiling(tile_size, overlap)
    fitted = max(1, min(tile_size, max(height, width)))
    return align_tiling((fitted, min(overlap, fitted - 1)), multiple, height, width)


def align_tiling(tiling: tuple[int, int], multiple: int, height: int, width: int) -> tuple[int, int]:
    """``tiling`` (window side, overlap) in whole ``multiple``s of pixels, the side rounded up and the
    overlap down, so that every window of an image whose sides are multiples too starts and ends on that
    coarser grid (``s2-10band``: the 20 m grid under the 10 m one). Refuses other sides."""
    if multiple == 1:
        return tiling
    if height % multiple or width % multiple:
        raise ValueError(
            f"the image is {height} x {width} pixels: this model needs whole {multiple} x {multiple} blocks "
            f"(the coarser bands' pixels); crop it to multiples of {multiple}"
        )
    side, overlap = tiling
    side = min(-(-side // multiple) * multiple, max(height, width))
    return side, min(overlap // multiple * multiple, side - multiple)


@dataclass(frozen=True)
class StreamPlan:
    """The windows of an ``upscale_stream`` run and how they blend, per axis (see ``_AxisPlan``)."""

    rows: _AxisPlan
    cols: _AxisPlan
    lr_rows: list[int]  # window starts, LR pixels
    lr_cols: list[int]
    tile: Tile  # the size of every window (its row and col are 0)
    extent: tuple[int, int]  # HR pixels the model returns per window

    @classmethod
    def build(
        cls, height: int, width: int, scale: float, tile_size: int, overlap: int, ramp: Ramp
    ) -> StreamPlan:
        _validate_tiling(tile_size, overlap)
        if not scale >= 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        if height < 1 or width < 1:
            raise ValueError(f"image must be non-empty, got {height}x{width}")
        stride = tile_size - overlap
        tile_h, tile_w = min(tile_size, height), min(tile_size, width)
        lr_rows, lr_cols = _axis_starts(height, tile_size, stride), _axis_starts(width, tile_size, stride)
        out_h, out_w = round(height * scale), round(width * scale)
        return cls(
            _AxisPlan.build(lr_rows, tile_h, height, out_h, overlap, ramp),
            _AxisPlan.build(lr_cols, tile_w, width, out_w, overlap, ramp),
            lr_rows, lr_cols, Tile(0, 0, tile_h, tile_w),
            (hr_extent(tile_h, height, out_h), hr_extent(tile_w, width, out_w)),
        )  # fmt: skip

    def windows(self, region: Region | None = None) -> list[Placed]:
        """``(row index, column index, window)``, row-major; with ``region``, only the windows whose HR
        footprint meets it (every window any pixel of the region is blended from)."""
        h, w = self.tile.height, self.tile.width
        return [
            (i, j, Tile(r, c, h, w))
            for i, r in enumerate(self.lr_rows)
            for j, c in enumerate(self.lr_cols)
            if region is None
            or (self.rows.meets(i, region[0], region[1]) and self.cols.meets(j, *region[2:]))
        ]

    def lr_bounds(self, region: Region) -> Region:
        """The LR pixels ``(row start, row end, column start, column end)`` the HR ``region`` depends on."""
        windows = [t for _, _, t in self.windows(region)]
        return (
            min(t.row for t in windows), max(t.row + t.height for t in windows),
            min(t.col for t in windows), max(t.col + t.width for t in windows),
        )  # fmt: skip

    def batches(
        self, windows: Sequence[Placed], batch_size: int, first_row: int, by_row: bool
    ) -> list[list[Placed]]:
        """``windows`` from tile row ``first_row`` on, in batches of at most ``batch_size``; ``by_row``:
        batches never span two tile rows (the same batches whether a job runs through or resumes)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        todo = [w for w in windows if w[0] >= first_row]
        rows = (
            [[w for w in todo if w[0] == i] for i in range(first_row, len(self.lr_rows))]
            if by_row
            else [todo]
        )
        return [row[k : k + batch_size] for row in rows for k in range(0, len(row), batch_size)]


@dataclass(frozen=True)
class SceneGrid:
    """An LR scene of ``lr_size`` (rows, cols) and its output grid at a real ``scale``, on the same bounds."""

    lr_size: tuple[int, int]
    scale: float

    @property
    def out_size(self) -> tuple[int, int]:
        return round(self.lr_size[0] * self.scale), round(self.lr_size[1] * self.scale)

    def tile_coords(self, tiles: Sequence[Tile]) -> np.ndarray:
        """LR coordinates, relative to each tile, of the HR pixels ``upscale_stream`` asks the tile for:
        float32 ``(B, hr_extent(tile.height), hr_extent(tile.width), 2)`` (row, col); the tiles of one
        batch share a size."""
        (h, w), (out_h, out_w) = self.lr_size, self.out_size
        grids = []
        for t in tiles:
            ext_h, ext_w = hr_extent(t.height, h, out_h), hr_extent(t.width, w, out_w)
            rows = lr_coordinates(hr_index(t.row, h, out_h), ext_h, h, out_h, t.row)
            cols = lr_coordinates(hr_index(t.col, w, out_w), ext_w, w, out_w, t.col)
            grids.append(np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1))
        return np.stack(grids).astype(np.float32)
