"""The distance multi-revisit fusion pulls trajectories together under (SatDiffMoE, Song et al. 2024):
latent L2 plus LPIPS of the decoded RGB, ``d(x, z_i) = (1 - alpha) mean (x - z_i)^2 + alpha LPIPS``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from satsr.diffusion.fusion import DistanceFn
from satsr.io.bands import display_white, rgb_channels
from satsr.nn.lpips import shared_lpips


def latent_lpips_distance(
    decode: Callable[[Tensor], Tensor], bands: Sequence[str], alpha: float, device: torch.device
) -> DistanceFn:
    """``d`` over latents decoded by ``decode`` into images of ``bands``: LPIPS sees their RGB divided by
    the display white and clipped to [0, 1]. Without RGB bands, or with ``alpha`` 0, plain latent L2.

    The estimates ``z_i`` are decoded and passed through LPIPS's AlexNet once per center search; each
    gradient step decodes only the candidate ``x``.
    """
    rgb, white = rgb_channels(bands), display_white(bands)
    lpips = shared_lpips(device) if alpha > 0 and rgb is not None else None

    def picture(z: Tensor) -> Tensor:
        return (decode(z)[:, list(rgb or ())] / white).clamp(0, 1)

    def prepare(targets: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        def l2(x: Tensor, pick: Tensor) -> Tensor:
            return (x - targets[pick]).square().flatten(1).mean(1)

        if lpips is None:
            return l2
        with torch.no_grad():
            target_features = lpips.features(picture(targets), normalize=True)

        def distance(x: Tensor, pick: Tensor) -> Tensor:
            perceptual = lpips.compare(lpips.features(picture(x), normalize=True),
                                       [f[pick] for f in target_features])  # fmt: skip
            return (1 - alpha) * l2(x, pick) + alpha * perceptual

        return distance

    return prepare
