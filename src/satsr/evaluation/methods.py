"""The methods ``satsr.evaluation.harness`` scores: a ``Method`` maps one LR image (C, h, w) to an SR image
of the HR size (C, H, W); a ``PairMethod`` sees the whole pair (revisits, or an oracle's HR). Bicubic
interpolation, and any model tiled like ``satsr upscale`` (``upscaler_method``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from satsr.defaults import DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE
from satsr.evaluation.datasets import EvalPair
from satsr.io.stream import upscale_stream
from satsr.io.tiling import SceneGrid, fit_tiling
from satsr.models.sampling import sampling_tile_fn

Method = Callable[[np.ndarray], np.ndarray]
"""(C, h, w) float32 LR -> (C, H, W) SR of the HR size."""


@dataclass(frozen=True)
class PairMethod:
    """A method that needs more of the pair than its LR: multi-revisit fusion (``pair.revisits``,
    ``pair.dt_days``), or an oracle that picks with ``pair.hr`` (say so in its name)."""

    run: Callable[[EvalPair], np.ndarray]


class ScaledModel(Protocol):
    """A model callable on (B, C, h, w) arrays that returns (B, C, h * scale, w * scale)."""

    @property
    def scale(self) -> float: ...

    def __call__(self, lr: np.ndarray, /) -> Any: ...


def bicubic_upsample(lr: np.ndarray, scale: float) -> np.ndarray:
    """Bicubic interpolation (no antialiasing, align_corners=False) of (C, h, w) to round(h * scale)."""
    size = (round(lr.shape[-2] * scale), round(lr.shape[-1] * scale))
    x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False)[0].numpy()


def upscaler_method(
    upscaler: ScaledModel,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    samples: int = 1,
    steps: int | None = None,
    seed: int = DEFAULT_SEED,
    scale: float | None = None,
) -> Method:
    """A ``Method`` from a model, tiled like ``satsr upscale``: an LR no larger than a tile runs as one
    window of its own size (``fit_tiling``), not padded up to ``tile_size``.

    Fixed-scale models run at their integer scale; continuous-scale models (``Upscaler.continuous``)
    at ``scale`` (default: their own). Sampling models give the mean of ``samples`` draws with
    ``steps`` steps, fixed by ``seed``.
    """
    continuous = bool(getattr(upscaler, "continuous", False))
    s = float(upscaler.scale if scale is None else scale)
    if not continuous and (round(s) != s or s < 1 or s != upscaler.scale):
        raise ValueError(
            f"upscaler_method: the model runs at its integer scale {upscaler.scale} only, not {s}"
        )
    per_pixel = 2 if samples > 1 else 1  # the mean, and with several samples their std after it

    def method(lr: np.ndarray) -> np.ndarray:
        channels, height, width = lr.shape
        grid = SceneGrid((height, width), s) if continuous else None
        tile_fn = sampling_tile_fn(upscaler, samples, steps, seed, grid)  # type: ignore[arg-type]
        multiple = getattr(upscaler, "grid_multiple", 1)
        side, lap = fit_tiling(tile_size, overlap, height, width, multiple)  # as satsr upscale
        out = np.empty((channels, round(height * s), round(width * s)), dtype=np.float32)

        def write(row: int, col: int, block: np.ndarray) -> None:
            out[:, row : row + block.shape[1], col : col + block.shape[2]] = block[:channels]

        upscale_stream(
            lambda t: lr[:, t.row : t.row + t.height, t.col : t.col + t.width], write, height, width,
            tile_fn, s, side, lap, out_channels=channels * per_pixel,
        )  # fmt: skip
        return out

    return method
