"""Overlapping tiles over a low-resolution image and seam-free blending of their super-resolved outputs.

A large scene is cut into ``tile_size`` windows that overlap by ``overlap`` LR pixels; each window is
upscaled by the model and the HR outputs are averaged with separable weights that ramp from a small
positive value to 1 across the overlap, so neighbouring tiles cross-fade instead of leaving seams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, Protocol

import numpy as np

from satsr.defaults import DEFAULT_BATCH_SIZE
from satsr.io.progress import progress as make_progress

Ramp = Literal["cosine", "linear"]
"""Shape of the blending ramp across an overlap."""

UpscaleFn = Callable[[np.ndarray], np.ndarray]
"""A model mapping a batch ``(B, C, h, w)`` to ``(B, C, h * scale, w * scale)``."""

TileFn = Callable[[np.ndarray, Sequence["Tile"]], np.ndarray]
"""A model over a batch of windows that also sees their positions (for per-window seeds)."""

ReadFn = Callable[["Tile"], np.ndarray]
"""Reads the LR window of a tile, ``(C, h, w)``."""

WriteFn = Callable[[int, int, np.ndarray], None]
#: Blended sums of cells not final yet, keyed by (cell row, cell column): what a resumed job needs.
Pending = dict[tuple[int, int], np.ndarray]


class BatchFuture(Protocol):
    def result(self) -> np.ndarray: ...


class Executor(Protocol):
    """Runs model calls elsewhere (a Dask ``Client`` fits): ``submit(fn, batch, tiles).result()``."""

    def submit(self, fn: TileFn, batch: np.ndarray, tiles: list[Tile]) -> BatchFuture: ...


class Checkpoint(Protocol):
    """Where ``upscale_stream`` records progress so a killed job can continue.

    ``load()`` gives the first tile row still to run and the pending sums at that point (or None
    to start from the beginning); ``save(next_row, rows, pending)`` is called after each of the
    ``rows`` tile rows, once every block it finished has gone to ``write``.
    """

    def load(self) -> tuple[int, Pending] | None: ...

    def save(self, next_row: int, rows: int, pending: Pending) -> None: ...


"""Receives a final HR block ``(C, h, w)`` at HR pixel ``(row, col)``."""

DEFAULT_RAMP: Ramp = "cosine"
IMAGE_NDIM = 3  # (C, H, W)


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


def _pad_to(patch: np.ndarray, tile_size: int) -> np.ndarray:
    """Pad a ``(C, h, w)`` patch at the bottom/right to at least ``tile_size``, reflecting where possible."""
    _, h, w = patch.shape
    pad_h, pad_w = max(tile_size - h, 0), max(tile_size - w, 0)
    if pad_h == 0 and pad_w == 0:
        return patch
    mode: Literal["reflect", "edge"] = "reflect" if pad_h < h and pad_w < w else "edge"
    return np.pad(patch, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)


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


def _run_batch(
    model: TileFn, batch: np.ndarray, tiles: Sequence[Tile], expected: tuple[int, int], channels: int
) -> np.ndarray:
    """Call the model and check it returned a float batch of the expected HR extent."""
    return _check_batch(model(batch, tiles), batch, expected, channels)


def _check_batch(result: np.ndarray, batch: np.ndarray, extent: tuple[int, int], channels: int) -> np.ndarray:
    sr = np.asarray(result, dtype=np.float32)
    expected = (batch.shape[0], channels, *extent)
    if sr.shape != expected:
        raise ValueError(f"model returned shape {sr.shape}, expected {expected}")
    if not np.isfinite(sr).all():  # it would be written as nodata, or as a meaningless integer
        raise ValueError(f"model returned {int((~np.isfinite(sr)).sum())} NaN or infinite values")
    return sr


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


#: An HR region ``(row start, row end, column start, column end)``, ends exclusive.
Region = tuple[int, int, int, int]


def fit_tiling(tile_size: int, overlap: int, height: int, width: int) -> tuple[int, int]:
    """The window side and overlap for an image (after checking the requested ones): ``tile_size``, or
    the image's longer side where that is shorter, so a small image runs as one window of its own
    size instead of being padded up to ``tile_size`` (and the overlap, unused then, is kept below it)."""
    _validate_tiling(tile_size, overlap)
    fitted = max(1, min(tile_size, max(height, width)))
    return fitted, min(overlap, fitted - 1)


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
            (hr_extent(tile_size, height, out_h), hr_extent(tile_size, width, out_w)),
        )  # fmt: skip

    def windows(self, region: Region | None = None) -> list[tuple[int, int, Tile]]:
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


def upscale_stream(
    read: ReadFn,
    write: WriteFn,
    height: int,
    width: int,
    model: TileFn,
    scale: float,
    tile_size: int,
    overlap: int,
    out_channels: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ramp: Ramp = DEFAULT_RAMP,
    progress: bool = False,
    checkpoint: Checkpoint | None = None,
    executor: Executor | None = None,
    prefetch: int = 4,
    region: Region | None = None,
) -> None:
    """Super-resolve a ``height`` x ``width`` LR image window by window, never holding it whole.

    ``read(tile)`` returns the LR window ``(C, h, w)``; ``model`` maps a batch of windows (padded to
    ``tile_size``, reflect or edge) to ``(B, out_channels, h * scale, w * scale)``; ``write(row, col,
    block)`` receives final, blended HR blocks in HR pixel coordinates, each pixel exactly once.

    A real (non-integer) ``scale`` makes an output grid of ``round(height * scale)`` x
    ``round(width * scale)`` pixels on the same bounds. A window starting at LR pixel ``r`` then covers
    HR pixels from ``hr_index(r, height, out_height)`` on, and ``model`` must return, for each window,
    the ``hr_extent(tile_size, ...)`` HR pixels from there (a model that takes query coordinates
    computes them with ``lr_coordinates``); what lies beyond the window's own HR end is ignored.
    Windows run row-major and a block is written as soon as the last window covering it has run,
    so memory holds one batch plus the not-yet-final overlap strip (``overlap * scale`` HR rows of
    the image width), whatever the image height.

    With a ``checkpoint``, batches never span two tile rows (the same batches whether a job runs
    through or resumes, so the pixels are identical), progress is saved after every tile row, and
    a job restarts from the tile row ``checkpoint.load()`` gives.

    With an ``executor`` (e.g. a Dask distributed ``Client``), up to ``prefetch`` batches are read
    ahead and submitted; results are taken in order, so blending, writing and checkpoints happen
    exactly as in a single process.

    ``progress``: a bar on a terminal, a line every few percent (tiles, elapsed and remaining time) when
    stderr is a pipe or a log file.

    With an HR ``region``, only the windows it is blended from run, and only the blocks meeting it are
    written (whole, so the caller crops them): the region's pixels equal those of a whole run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if region is not None and checkpoint is not None:
        raise ValueError("a region run cannot be checkpointed")
    plan = StreamPlan.build(height, width, scale, tile_size, overlap, ramp)
    grid = plan.windows(region)
    pending: Pending = {}  # weighted sums of cells not yet final
    first_row = 0
    if checkpoint is not None and (state := checkpoint.load()) is not None:
        first_row, pending = state
    todo = [g for g in grid if g[0] >= first_row]
    if checkpoint is None:
        chunks = [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)]
    else:
        by_row = [[g for g in todo if g[0] == i] for i in range(first_row, len(plan.lr_rows))]
        chunks = [row[k : k + batch_size] for row in by_row for k in range(0, len(row), batch_size)]

    def load(chunk: list[tuple[int, int, Tile]]) -> tuple[np.ndarray, list[Tile]]:
        tiles = [t for _, _, t in chunk]
        return np.stack([_pad_to(np.asarray(read(t), dtype=np.float32), tile_size) for t in tiles]), tiles

    with make_progress(len(grid), len(grid) - len(todo), progress) as bar:
        in_flight: deque[tuple[list[tuple[int, int, Tile]], np.ndarray, BatchFuture]] = deque()
        for index, chunk in enumerate(chunks):
            if executor is None:
                batch, tiles = load(chunk)
                sr = _run_batch(model, batch, tiles, plan.extent, out_channels or batch.shape[1])
            else:
                while len(in_flight) < max(1, prefetch) and index + len(in_flight) < len(chunks):
                    ahead = chunks[index + len(in_flight)]
                    batch, tiles = load(ahead)
                    in_flight.append((ahead, batch, executor.submit(model, batch, tiles)))
                _, batch, future = in_flight.popleft()
                sr = _check_batch(future.result(), batch, plan.extent, out_channels or batch.shape[1])
            for (i, j, _), sr_tile in zip(chunk, sr, strict=True):
                _blend(plan, i, j, sr_tile, pending, write, region)
            bar.update(len(chunk))
            i_last, j_last, _ = chunk[-1]
            if checkpoint is not None and j_last == len(plan.lr_cols) - 1:
                checkpoint.save(i_last + 1, len(plan.lr_rows), pending)
    if pending:  # every cell has a last window, so this would be a bug in the plan
        raise AssertionError(f"{len(pending)} blended cells were never written")


def _blend(
    plan: StreamPlan,
    i: int,
    j: int,
    sr_tile: np.ndarray,
    pending: Pending,
    write: WriteFn,
    region: Region | None,
) -> None:
    """Add window ``(i, j)``'s weighted output to the cells it covers; write the cells it completes."""
    rows, cols = plan.rows, plan.cols
    weighted = sr_tile[:, : rows.length(i), : cols.length(j)] * np.outer(
        rows.weights[i], cols.weights[j]
    ).astype(np.float32)
    row_cells = rows.cells_of(i, None if region is None else region[:2])
    col_cells = cols.cells_of(j, None if region is None else region[2:])
    for ci in row_cells:
        (y0, y1), r0 = rows.cells[ci], rows.starts[i]
        for cj in col_cells:
            (x0, x1), c0 = cols.cells[cj], cols.starts[j]
            part = weighted[:, y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]
            acc = pending.get((ci, cj))
            acc = part.copy() if acc is None else acc + part
            if rows.last[ci] == i and cols.last[cj] == j:
                norm = np.outer(rows.weight_sum[y0:y1], cols.weight_sum[x0:x1])
                write(y0, x0, (acc / norm).astype(np.float32))
                pending.pop((ci, cj), None)
            else:
                pending[(ci, cj)] = acc


def upscale_tiled(
    image: np.ndarray,
    model: UpscaleFn,
    scale: int,
    tile_size: int,
    overlap: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ramp: Ramp = DEFAULT_RAMP,
    progress: bool = False,
) -> np.ndarray:
    """Super-resolve an in-memory ``(C, H, W)`` image with ``upscale_stream``; returns ``(C, H*s, W*s)``."""
    if image.ndim != IMAGE_NDIM:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    lr = np.asarray(image, dtype=np.float32)
    channels, height, width = lr.shape
    out = np.empty((channels, height * scale, width * scale), dtype=np.float32)

    def read(t: Tile) -> np.ndarray:
        return lr[:, t.row : t.row + t.height, t.col : t.col + t.width]

    def write(row: int, col: int, block: np.ndarray) -> None:
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block

    upscale_stream(
        read, write, height, width, lambda batch, _: model(batch), scale, tile_size, overlap,
        batch_size=batch_size, ramp=ramp, progress=progress,
    )  # fmt: skip
    return out
