"""Multi-revisit fusion with a latent diffusion SR model (SatDiffMoE, Song et al. 2024, Alg. 1).

N revisits of one place give one HR image: each revisit conditions its own trajectory (its LR, its
reference latent and, with a time-conditioned UNet, its time difference to the target date), the
trajectories run as one batch under a sampler whose step ``TrajectoryFusion`` back-solves (DDIM with
eta 0, or Euler), and every ``every`` steps their clean latents are pulled toward their center under
``satsr.models.fusion_distance``. The result decodes the center of the final latents, back-projected
onto the per-pixel median LR when the model's ``lr_consistency`` is on. N = 1 is plain conditional
sampling. ``FusionConfig`` holds every setting; a call takes only the revisits, the seed and a place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from satsr.defaults import DEFAULT_FUSION_STEPS
from satsr.diffusion.fusion import TrajectoryFusion, find_center, l2_center
from satsr.diffusion.noise import SeededNoise, field_noise, mix_seed
from satsr.diffusion.precond import EDMPrecond, bind
from satsr.diffusion.samplers import get_sampler
from satsr.diffusion.schedules import karras_sigmas
from satsr.models.autoencoder import KLAutoencoder, SpaceToDepth
from satsr.models.consistency import DEFAULT_ITERATIONS, project_to_lr, sensor_degradation
from satsr.models.fusion_distance import latent_lpips_distance
from satsr.nn.layers import pad_to_multiple
from satsr.types import Conditioning


@dataclass(frozen=True)
class FusionConfig:
    """The settings of a fusion (defaults: those the bundled ``s2-rgbn-x4-fusion`` model is run with)."""

    steps: int = DEFAULT_FUSION_STEPS  # sampler steps (Karras sigmas over the model's range)
    every: int = 5  # pull the trajectories together every this many steps
    strength: float = 0.1  # how far toward the center: z0' = (1 - strength) z0 + strength center
    alpha: float = 0.2  # weight of LPIPS in the distance to the center (1 - alpha: latent L2)
    center_steps: int = 5  # Adam steps of the center search
    center_batch: int = 4  # estimates each center-search step looks at
    sampler: str = "ddim"  # a sampler TrajectoryFusion is exact under: "ddim" (eta 0) or "euler"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.sampler not in TrajectoryFusion.compatible_samplers:
            raise ValueError(
                f"fusion back-solves the DDIM (eta 0) / Euler step: sampler must be one of "
                f"{', '.join(sorted(TrajectoryFusion.compatible_samplers))}, got {self.sampler!r}"
            )

    def with_steps(self, steps: int | None) -> FusionConfig:
        return self if steps is None else dataclasses.replace(self, steps=steps)


class FusableModel(Protocol):
    """What fusion needs of a latent diffusion SR model (``satsr.models.ldm.LatentDiffusionSR`` has it)."""

    autoencoder: KLAutoencoder | SpaceToDepth
    precond: EDMPrecond
    bands: tuple[str, ...]
    scale: int
    sigma_min: float
    sigma_max: float
    size_multiple: int  # LR sides must be multiples of it (padded otherwise)
    lr_consistency: bool

    @property
    def time_conditioned(self) -> bool: ...

    def condition(self, lr: Tensor, reference: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


def revisit_conditioning(lrs: Tensor, dt_days: Sequence[float], scale: float) -> Conditioning:
    """The conditioning of one fusion: revisits ``(N, C, h, w)`` and their time differences to the target
    date (target minus revisit, days), as one scene ``(1, N, C, h, w)``."""
    if len(dt_days) != len(lrs):
        raise ValueError(f"{len(lrs)} revisits but {len(dt_days)} time differences")
    dt = torch.as_tensor(list(dt_days), dtype=lrs.dtype, device=lrs.device)
    return Conditioning(lrs[None], float(scale), dt[None])


@torch.no_grad()
def fuse_revisits(
    model: FusableModel,
    cond: Conditioning,
    seed: int,
    config: FusionConfig = FusionConfig(),
    origin: tuple[int, int] = (0, 0),
) -> Tensor:
    """One HR image ``(1, C, H, W)`` from the revisits of ``cond`` (one scene, ``(1, N, C, h, w)``).

    ``seed`` fixes the result; ``origin`` (the LR offset of a tile in its scene) cuts each trajectory's
    initial noise from a scene-wide field, so tiles of one scene blend without seams. LR sides the UNet
    cannot halve are padded (edge values repeated) and the padding is cropped from the output.
    """
    if cond.lr.ndim != 5 or cond.batch_size != 1 or cond.dt_days is None:
        raise ValueError("fusion takes one scene of dated revisits: lr (1, N, C, h, w) and dt_days (1, N)")
    if cond.scale != model.scale:
        raise ValueError(
            f"the model super-resolves x{model.scale}, the conditioning asks for x{cond.scale:g}"
        )
    lrs, n = cond.lr[0], cond.lr.shape[1]
    height, width = lrs.shape[-2:]
    lrs = pad_to_multiple(lrs, model.size_multiple)
    cond_in, z_ref = model.condition(lrs)
    kwargs = {"dt_days": cond.dt_days[0]} if model.time_conditioned else {}
    sigmas = karras_sigmas(config.steps, model.sigma_min, model.sigma_max, device=lrs.device).to(lrs.dtype)
    trajectory_seeds = [mix_seed(seed, (i, 0)) for i in range(n)]
    x = torch.stack([field_noise(s, origin, z_ref.shape[1:]) for s in trajectory_seeds])
    x = x.to(device=lrs.device, dtype=z_ref.dtype) * float(sigmas[0])
    distance = latent_lpips_distance(
        model.autoencoder.decode_latent, model.bands, config.alpha, next(model.parameters()).device
    )
    center = find_center(distance, config.center_steps, batch=config.center_batch, seed=seed)
    fusion = TrajectoryFusion(
        bind(model.precond, cond_in, **kwargs), sigmas, center if n > 1 else l2_center, config.every,
        config.strength, z_ref,
    )  # fmt: skip
    sample = get_sampler(config.sampler)
    latents = z_ref + sample(fusion, x, sigmas, noise=SeededNoise(trajectory_seeds, lrs.device))
    sr = model.autoencoder.decode_latent(center(latents) if n > 1 else latents)
    if model.lr_consistency:
        median = lrs.median(dim=0, keepdim=True).values
        sr = project_to_lr(sr, median, sensor_degradation(model.scale, model.bands), DEFAULT_ITERATIONS)
    return sr[..., : height * model.scale, : width * model.scale]
