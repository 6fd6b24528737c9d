"""The sample ensemble: a model over a batch of a scene's windows, as the mean (and spread) of draws.

A diffusion model draws ``samples`` samples of every window; sample ``k`` of every window is cut from
one scene-wide noise field seeded by ``mix_seed(seed, k)`` (``satsr.diffusion.noise``), so windows
overlap on the same noise and results do not depend on batching. The mean is the estimate; with
``samples > 1`` the per-pixel, per-band standard deviation of the draws is its uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from satsr.diffusion.noise import mix_seed
from satsr.io.stream import TileFn
from satsr.io.tiling import SceneGrid, Tile
from satsr.models.registry import Upscaler


def sampling_tile_fn(
    upscaler: Upscaler, samples: int, steps: int | None, seed: int, grid: SceneGrid | None = None
) -> TileFn:
    """A ``TileFn`` giving the mean over ``samples`` draws, and with ``samples > 1`` their std after it.

    The output has ``C`` channels (mean) or ``2 C`` (mean, then per-band standard deviation). A
    continuous-scale model needs the scene ``grid``: each tile is asked for its part of the scene's
    output grid at ``grid.scale`` (see ``satsr.io.stream.upscale_stream``).
    """
    if upscaler.continuous and grid is None:
        raise ValueError(f"{upscaler.name} is a continuous-scale model: give the scene grid")

    def run(batch: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
        extra: dict = {}
        if upscaler.continuous and grid is not None:
            coords = torch.from_numpy(grid.tile_coords(tiles))
            extra = {"scale": grid.scale, "coords": coords}
        if not getattr(upscaler, "stochastic", False):
            return np.asarray(upscaler(batch, **extra))
        repeated = np.concatenate([batch] * samples)
        if "coords" in extra:
            extra["coords"] = torch.cat([extra["coords"]] * samples)
        # Sample k of every tile is cut from one scene-wide noise field, so overlaps share noise.
        seeds = [mix_seed(seed, k) for k in range(samples) for _ in tiles]
        origins = [(t.row, t.col) for _ in range(samples) for t in tiles]
        draws = np.asarray(upscaler(repeated, seeds=seeds, steps=steps, origins=origins, **extra))
        draws = draws.reshape(samples, len(tiles), *draws.shape[1:])
        mean = draws.mean(axis=0)
        return np.concatenate([mean, draws.std(axis=0)], axis=1) if samples > 1 else mean

    return run
