"""Streamed super-resolution of a scene of any size: plan the windows, run them in batches, blend, write.

``upscale_stream`` composes three parts: the plan (``satsr.io.tiling.StreamPlan``), a batch runner that
reads windows and calls the model, here or on an executor with read-ahead, and the blender
(``satsr.io.blending.Blender``), whose finished blocks go to ``write``. Memory holds one batch plus the
not-yet-final overlap strip, whatever the scene's height.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np

from satsr.defaults import DEFAULT_BATCH_SIZE
from satsr.io.blending import Blender, Pending
from satsr.io.progress import progress as make_progress
from satsr.io.tiling import DEFAULT_RAMP, Placed, Ramp, Region, StreamPlan, Tile

UpscaleFn = Callable[[np.ndarray], np.ndarray]
"""A model mapping a batch ``(B, C, h, w)`` to ``(B, C, h * scale, w * scale)``."""

TileFn = Callable[[np.ndarray, Sequence[Tile]], np.ndarray]
"""A model over a batch of windows that also sees their positions (for per-window seeds)."""

ReadFn = Callable[[Tile], np.ndarray]
"""Reads the LR window of a tile, ``(C, h, w)``."""

WriteFn = Callable[[int, int, np.ndarray], None]
"""Receives a final HR block ``(C, h, w)`` at HR pixel ``(row, col)``."""

IMAGE_NDIM = 3  # (C, H, W)


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

    ``read(tile)`` returns the LR window ``(C, h, w)``; ``model`` maps a batch of windows to ``(B,
    out_channels, h * scale, w * scale)``; ``write(row, col, block)`` receives final, blended HR blocks
    in HR pixel coordinates, each pixel exactly once. Every window has the plan's size: ``tile_size``
    a side, or the image's side where that is shorter. A window is never padded, since what a model
    makes of padding (a network that normalises over its window: GroupNorm) would change valid pixels.

    A real (non-integer) ``scale`` makes an output grid of ``round(height * scale)`` x
    ``round(width * scale)`` pixels on the same bounds. A window starting at LR pixel ``r`` then covers
    HR pixels from ``hr_index(r, height, out_height)`` on, and ``model`` must return, for each window,
    the ``hr_extent(window side, ...)`` HR pixels from there (a model that takes query coordinates
    computes them with ``lr_coordinates``); what lies beyond the window's own HR end is ignored.
    Windows run row-major and a block is written as soon as the last window covering it has run.

    With a ``checkpoint``, batches never span two tile rows (the same batches whether a job runs
    through or resumes, so the pixels are identical), progress is saved after every tile row, and
    a job restarts from the tile row ``checkpoint.load()`` gives. With an ``executor`` (e.g. a Dask
    distributed ``Client``), up to ``prefetch`` batches are read ahead and submitted; results are
    taken in order, so blending, writing and checkpoints happen exactly as in a single process.
    ``progress``: a bar on a terminal, a line every few percent when stderr is a pipe or a log file.
    With an HR ``region``, only the windows it is blended from run, and only the blocks meeting it are
    written (whole, so the caller crops them): the region's pixels equal those of a whole run.
    """
    if region is not None and checkpoint is not None:
        raise ValueError("a region run cannot be checkpointed")
    plan = StreamPlan.build(height, width, scale, tile_size, overlap, ramp)
    first_row, pending = (checkpoint.load() if checkpoint is not None else None) or (0, {})
    windows = plan.windows(region)
    batches = plan.batches(windows, batch_size, first_row, by_row=checkpoint is not None)
    blender = Blender(plan, region, pending)
    runner = BatchRunner(read, model, plan.tile, plan.extent, out_channels, executor, prefetch)
    with make_progress(len(windows), len(windows) - sum(map(len, batches)), progress) as bar:
        for batch, sr in runner.run(batches):
            for (i, j, _), sr_tile in zip(batch, sr, strict=True):
                for row, col, block in blender.add(i, j, sr_tile):
                    write(row, col, block)
            bar.update(len(batch))
            last_row, last_col, _ = batch[-1]
            if checkpoint is not None and last_col == len(plan.lr_cols) - 1:
                checkpoint.save(last_row + 1, len(plan.lr_rows), blender.pending)
    blender.check_done()


class BatchRunner:
    """Reads a batch's windows (each of the plan's ``window`` size), calls the model on them, here or on
    an ``executor`` with up to ``prefetch`` batches in flight, and checks each result: a float batch of
    the planned HR extent with ``out_channels`` (default: the input's) and no NaN. Results come in batch
    order."""

    def __init__(
        self,
        read: ReadFn,
        model: TileFn,
        window: Tile,
        extent: tuple[int, int],
        out_channels: int | None = None,
        executor: Executor | None = None,
        prefetch: int = 4,
    ) -> None:
        self.read, self.model, self.window, self.extent = read, model, window, extent
        self.out_channels, self.executor, self.prefetch = out_channels, executor, max(1, prefetch)

    def load(self, batch: Sequence[Placed]) -> tuple[np.ndarray, list[Tile]]:
        tiles = [t for _, _, t in batch]
        patches = [np.asarray(self.read(t), np.float32) for t in tiles]
        size = (self.window.height, self.window.width)
        for t, patch in zip(tiles, patches, strict=True):
            if patch.ndim != 3 or patch.shape[1:] != size:
                raise ValueError(f"read({t}) returned {patch.shape}, expected (C, {size[0]}, {size[1]})")
        return np.stack(patches), tiles

    def run(self, batches: Sequence[list[Placed]]) -> Iterator[tuple[list[Placed], np.ndarray]]:
        if self.executor is None:
            for batch in batches:
                lr, tiles = self.load(batch)
                yield batch, self.check(self.model(lr, tiles), lr)
            return
        in_flight: deque[tuple[list[Placed], np.ndarray, BatchFuture]] = deque()
        submitted = 0
        for _ in batches:
            while len(in_flight) < self.prefetch and submitted < len(batches):
                lr, tiles = self.load(batches[submitted])
                in_flight.append((batches[submitted], lr, self.executor.submit(self.model, lr, tiles)))
                submitted += 1
            batch, lr, future = in_flight.popleft()
            yield batch, self.check(future.result(), lr)

    def check(self, result: np.ndarray, lr: np.ndarray) -> np.ndarray:
        sr = np.asarray(result, dtype=np.float32)
        expected = (lr.shape[0], self.out_channels or lr.shape[1], *self.extent)
        if sr.shape != expected:
            raise ValueError(f"model returned shape {sr.shape}, expected {expected}")
        if not np.isfinite(sr).all():  # it would be written as nodata, or as a meaningless integer
            raise ValueError(f"model returned {int((~np.isfinite(sr)).sum())} NaN or infinite values")
        return sr


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
