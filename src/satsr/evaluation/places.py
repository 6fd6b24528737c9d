"""Evaluation pairs from the real places of ``satsr.data.sources``, each labelled with its kind.

The test split is the held-apart set (``satsr.data.sources.HELD_APART``): T33UUB cut into tiles, 40
EuroSAT tiles (4 of each of 10 land-cover classes) and 2 BigEarthNet patches. Every scene is degraded
whole by Wald's protocol and cut into aligned LR/HR tiles, as ``load_pairs`` does for rasters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from satsr.data.degradation import wald_degrade
from satsr.data.sources import Scene, Split, s2_rgbn_scenes
from satsr.evaluation.datasets import EvalPair

#: HR side of the tiles large scenes are cut into (the size of a EuroSAT tile is 64).
DEFAULT_TILE_HR = 128


def scene_pairs(scene: Scene, scale: int, tile_hr: int = DEFAULT_TILE_HR) -> list[EvalPair]:
    """Aligned LR/HR tiles of about ``tile_hr`` HR pixels (the whole scene when it is smaller)."""
    _, height, width = scene.pixels.shape
    tile = min(tile_hr, height, width) // scale * scale
    if tile == 0:
        return []
    hr_full = torch.from_numpy(
        np.ascontiguousarray(scene.pixels[:, : height // scale * scale, : width // scale * scale])
    )
    with torch.no_grad():
        lr_full = wald_degrade(hr_full[None], scale, scene.bands)[0].numpy()
    pairs = []
    for top in range(0, hr_full.shape[1] - tile + 1, tile):
        for left in range(0, hr_full.shape[2] - tile + 1, tile):
            hr = hr_full[:, top : top + tile, left : left + tile].numpy()
            lr = lr_full[:, top // scale : (top + tile) // scale, left // scale : (left + tile) // scale]
            whole = tile == height == width
            name = scene.name if whole else f"{scene.name}_y{top}_x{left}"
            lr, hr = np.ascontiguousarray(lr), np.ascontiguousarray(hr)
            pairs.append(
                EvalPair(name, lr, hr, scene.bands, "wald", scene.name, kind=scene.kind or scene.name)
            )
    return pairs


def place_pairs(
    split: Split = "test", scale: int = 4, tile_hr: int = DEFAULT_TILE_HR, root: Path | None = None
) -> list[EvalPair]:
    """Pairs of every place of ``split`` (default: the held-apart test set), ordered by kind."""
    pairs = [pair for scene in s2_rgbn_scenes(split, root) for pair in scene_pairs(scene, scale, tile_hr)]
    return sorted(pairs, key=lambda pair: pair.kind)
