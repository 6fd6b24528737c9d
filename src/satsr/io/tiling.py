"""Overlapping tiles over a low-resolution image and seam-free blending of their super-resolved outputs.

A large scene is cut into ``tile_size`` windows that overlap by ``overlap`` LR pixels; each window is
upscaled by the model and the HR outputs are averaged with separable weights that ramp from a small
positive value to 1 across the overlap, so neighbouring tiles cross-fade instead of leaving seams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tqdm import tqdm

Ramp = Literal["cosine", "linear"]
"""Shape of the blending ramp across an overlap."""

UpscaleFn = Callable[[np.ndarray], np.ndarray]
"""A model mapping a batch ``(B, C, h, w)`` to ``(B, C, h * scale, w * scale)``."""

DEFAULT_BATCH_SIZE = 4
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


def _run_batch(model: UpscaleFn, batch: np.ndarray, scale: int) -> np.ndarray:
    """Call the model and check it returned an exactly ``scale``-times larger float batch."""
    sr = np.asarray(model(batch), dtype=np.float32)
    b, c, h, w = batch.shape
    expected = (b, c, h * scale, w * scale)
    if sr.shape != expected:
        raise ValueError(f"model returned shape {sr.shape}, expected {expected} for scale {scale}")
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
    """Super-resolve a ``(C, H, W)`` image tile by tile, blending overlaps; returns ``(C, H*scale, W*scale)``.

    Tiles are padded to ``tile_size`` (reflect, or edge where reflection is too short) so every batch
    shares a shape, the HR output is cropped back, and weighted sums are normalised in float32.
    """
    if image.ndim != IMAGE_NDIM:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lr = np.asarray(image, dtype=np.float32)
    channels, height, width = lr.shape
    tiles = tile_grid(height, width, tile_size, overlap)

    acc = np.zeros((channels, height * scale, width * scale), dtype=np.float32)
    weight_sum = np.zeros((height * scale, width * scale), dtype=np.float32)

    # Every tile pads to the same shape, so consecutive tiles can be batched directly.
    with tqdm(total=len(tiles), disable=not progress, desc="tiles", unit="tile") as bar:
        for start in range(0, len(tiles), batch_size):
            chunk = tiles[start : start + batch_size]
            patches = [
                _pad_to(lr[:, t.row : t.row + t.height, t.col : t.col + t.width], tile_size) for t in chunk
            ]
            sr = _run_batch(model, np.stack(patches), scale)
            for tile, sr_tile in zip(chunk, sr, strict=True):
                hr_h, hr_w = tile.height * scale, tile.width * scale
                weights = blend_weights(tile, height, width, scale, overlap, ramp)
                rows = slice(tile.row * scale, tile.row * scale + hr_h)
                cols = slice(tile.col * scale, tile.col * scale + hr_w)
                acc[:, rows, cols] += sr_tile[:, :hr_h, :hr_w] * weights
                weight_sum[rows, cols] += weights
            bar.update(len(chunk))

    return acc / weight_sum
