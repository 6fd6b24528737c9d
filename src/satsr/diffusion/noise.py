"""Noise a sampler starts from and draws: per-sample seeded streams, scene-wide noise fields, and the
one seed mixer every seed of a job is derived with.

Noise depends on the seed and on the place it is drawn for (a sample index, a tile's LR offset, a
block of the scene), never on batching: re-running any part of a scene, or the same window inside
another batch or another process, draws the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: Scene-wide noise fields are drawn in blocks of this many (latent) pixels, keyed by their place.
NOISE_BLOCK = 32


def mix_seed(seed: int, key: int | tuple[int, ...]) -> int:
    """The seed of ``key`` in a job seeded by ``seed``: a sample index, a tile's LR offset ``(row, col)``,
    a noise block's place. Independent streams for every (seed, key), the same whichever process asks."""
    keys = key if isinstance(key, tuple) else (key,)
    return int(np.random.SeedSequence((seed, *keys)).generate_state(1)[0])


class SeededNoise:
    """Per-sample random streams: sample ``k`` of a batch draws only from a generator seeded ``seeds[k]``.

    The same idea as NVlabs/edm's StackedRandomGenerator: a sample's initial noise and every later
    ``randn_like`` draw depend on its own seed only, so sample ``k`` with seed ``s`` is the same whether it
    is drawn alone or in any batch. Use :meth:`randn` for the initial noise and pass the object itself as a
    sampler's ``noise``.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        if len(seeds) == 0:
            raise ValueError("seeds must not be empty")
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(int(seed)) for seed in seeds]

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal of ``shape`` (``shape[0] == len(seeds)``), row ``k`` from generator ``k``."""
        if shape[0] != len(self.generators):
            raise ValueError(f"batch size {shape[0]} does not match the {len(self.generators)} seeds")
        rows = [
            torch.randn(tuple(shape[1:]), generator=g, device=self.device, dtype=dtype)
            for g in self.generators
        ]
        return torch.stack(rows)

    def __call__(self, like: Tensor) -> Tensor:
        """``randn_like(like)`` with per-sample seeds (a :data:`NoiseFn`)."""
        return self.randn(like.shape, dtype=like.dtype).to(like.device)


def seeded_noise(seeds: Sequence[int], device: torch.device | str = "cpu") -> SeededNoise:
    """A :class:`SeededNoise`: ``noise.randn(shape) * sigmas[0]`` starts a sampler, ``noise`` feeds it."""
    return SeededNoise(seeds, device)


def field_noise(seed: int, origin: tuple[int, int], shape: Sequence[int]) -> Tensor:
    """Standard normal noise ``shape = (C, h, w)`` at ``origin`` of a scene-wide field fixed by ``seed``.

    The field is made of ``NOISE_BLOCK``-square blocks, each drawn from a generator seeded by
    ``(seed, block row, block col)``, so any window of it is the same whichever tile asks.
    """
    channels, height, width = shape
    top, left = origin
    b0, b1 = top // NOISE_BLOCK, (top + height - 1) // NOISE_BLOCK
    c0, c1 = left // NOISE_BLOCK, (left + width - 1) // NOISE_BLOCK
    rows = []
    for by in range(b0, b1 + 1):
        blocks = []
        for bx in range(c0, c1 + 1):
            g = torch.Generator().manual_seed(mix_seed(seed, (by, bx)))
            blocks.append(torch.randn(channels, NOISE_BLOCK, NOISE_BLOCK, generator=g))
        rows.append(torch.cat(blocks, dim=2))
    field = torch.cat(rows, dim=1)
    y, x = top - b0 * NOISE_BLOCK, left - c0 * NOISE_BLOCK
    return field[:, y : y + height, x : x + width]
