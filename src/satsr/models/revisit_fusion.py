"""Multi-revisit fusion with a latent diffusion SR model: N revisits of one place give one HR image.

Two methods (``FusionConfig.method``):

* ``"anchored"`` (the default; issue 16): the revisits are aligned onto the **anchor**, the revisit
  nearest the target date, and weighted per pixel by how far each can be trusted there
  (``satsr.data.revisit_weights``: registration, per-band harmonisation, time closeness, how little
  correction a date needed, agreement with the anchor). The anchor and the ``max_trajectories - 1``
  best-weighted others each condition a trajectory of the model's own sampler (its steps, detail gate and
  precision), all started from **one shared noise** field; on every step after the first each clean
  estimate is pulled toward the weighted center of all (``satsr.diffusion.fusion.WeightedPull``; with
  ``strength`` 1 every trajectory follows the weighted mean of the N estimates, one expert per revisit),
  each weight also shrunk where that estimate disagrees with the anchor's. The first estimate (the
  posterior mean the detail gate keeps) stays the anchor's own. The anchor's trajectory is decoded,
  back-projected onto every sampled revisit on its own grid (multi-frame) and then onto the anchor's LR:
  the output is the anchor's radiometry, and where the other dates disagree it is the single-image
  result of the anchor (with one revisit, exactly ``satsr upscale``'s sample 0 of the same seed).
* ``"satdiffmoe"`` (Song et al. 2024, Alg. 1, as published): one trajectory per revisit from its own
  noise, DDIM (eta 0) steps back-solved by ``TrajectoryFusion``, every ``every`` steps the estimates
  pulled toward their center under latent L2 + LPIPS; the center of the final latents is decoded and
  back-projected onto the per-pixel median LR.

A time-conditioned UNet also sees each revisit's time difference to the target date. N = 1 is plain
conditional sampling. ``FusionConfig`` holds every setting; a call takes only the revisits, the seed and
a place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from satsr.data.revisit_weights import AlignedRevisits, RevisitWeighting, align_revisits
from satsr.diffusion.fusion import TrajectoryFusion, WeightedPull, find_center, l2_center
from satsr.diffusion.noise import SeededNoise, field_noise, mix_seed
from satsr.diffusion.precond import EDMPrecond, bind
from satsr.diffusion.samplers import get_sampler
from satsr.diffusion.schedules import karras_sigmas
from satsr.models.autoencoder import KLAutoencoder, SpaceToDepth
from satsr.models.consistency import (
    DEFAULT_ITERATIONS,
    project_to_lr,
    project_to_revisits,
    sensor_degradation,
)
from satsr.models.fusion_distance import latent_lpips_distance
from satsr.nn.layers import pad_to_multiple
from satsr.types import Conditioning, DenoiseFn

#: The fusion methods (module docstring).
FUSION_METHODS = ("anchored", "satdiffmoe")
#: Where the anchored method's output is made LR-consistent (``FusionConfig.project_onto``).
PROJECTIONS = ("anchor", "composite", "revisits")
#: Rounds of the multi-frame back-projection (its residual shrinks more slowly than one image's; 10
#: gained more than 5 and 2 on the two real stacks of the model card).
MULTI_FRAME_ITERATIONS = 10
#: A revisit whose weight stays below this everywhere is left out of the multi-frame back-projection: at
#: 0.01 a synthetic wrong-season date (vegetation's NIR halved, red and green +50 %, weight 0.04-0.06 after
#: harmonisation) made the Deimos stack 0.0012 LPIPS worse than its anchor alone; at 0.1 it changes
#: nothing, and no real date held here weighs between the two (the model card).
MIN_PROJECTION_WEIGHT = 0.1
#: SatDiffMoE's DDIM steps when none are given (the anchored method runs the model's own default).
SATDIFFMOE_STEPS = 50


@dataclass(frozen=True)
class FusionConfig:
    """The settings of a fusion. ``None`` fields take the method's default (in brackets)."""

    method: str = "anchored"
    steps: int | None = None  # sampler steps (anchored: the model's default; satdiffmoe: 50)
    strength: float | None = None  # z0' = (1 - strength) z0 + strength center (anchored 1, satdiffmoe 0.1)
    # anchored
    weighting: RevisitWeighting = field(default_factory=RevisitWeighting)
    max_trajectories: int = 3  # the anchor and the best-weighted others; the rest are not sampled
    shared_noise: bool = True  # every trajectory starts from the same noise field
    # the pull also acts on the first estimate (at sigma_max: the posterior mean the detail gate keeps);
    # off: that mean is the anchor's own, the other dates' means would replace the target date's
    pull_mean: bool = False
    # each trajectory's pull weight also halves where its clean estimate differs from the anchor's by this
    # much (root mean square over latent channels, in the latent's normalised units; None: not at all)
    pull_agreement: float | None = 0.1
    # LR consistency onto the anchor's LR, the weighted "composite" of all, or "revisits": every sampled
    # revisit on its own grid (multi-frame back-projection, ``project_to_revisits``), then the anchor
    # (the default since the pull spares the posterior mean and follows agreement: the model card)
    project_onto: str = "revisits"
    # satdiffmoe
    every: int = 5  # pull every this many steps (the anchored method pulls on every step)
    alpha: float = 0.2  # weight of LPIPS in the distance to the center (1 - alpha: latent L2)
    center_steps: int = 5  # Adam steps of the center search
    center_batch: int = 4  # estimates each center-search step looks at
    sampler: str = "ddim"  # a sampler TrajectoryFusion is exact under: "ddim" (eta 0) or "euler"

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise ValueError(f"fusion method must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.project_onto not in PROJECTIONS:
            raise ValueError(
                f"project_onto must be one of {', '.join(PROJECTIONS)}, got {self.project_onto!r}"
            )
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.pull_agreement is not None and self.pull_agreement <= 0:
            raise ValueError(f"pull_agreement must be > 0 or None, got {self.pull_agreement}")
        if self.max_trajectories < 1:
            raise ValueError(f"max_trajectories must be >= 1, got {self.max_trajectories}")
        if self.sampler not in TrajectoryFusion.compatible_samplers:
            raise ValueError(
                f"fusion back-solves the DDIM (eta 0) / Euler step: sampler must be one of "
                f"{', '.join(sorted(TrajectoryFusion.compatible_samplers))}, got {self.sampler!r}"
            )

    @property
    def pull_strength(self) -> float:
        return self.strength if self.strength is not None else (1.0 if self.method == "anchored" else 0.1)

    def steps_for(self, model: FusableModel) -> int:
        """The sampler steps this fusion runs with ``model``."""
        if self.steps is not None:
            return self.steps
        return model.default_steps if self.method == "anchored" else SATDIFFMOE_STEPS

    def with_steps(self, steps: int | None) -> FusionConfig:
        return self if steps is None else dataclasses.replace(self, steps=steps)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> FusionConfig:
        """From a model's ``config.json`` ``fusion`` entry (``weighting`` a dict of its own)."""
        settings = dict(settings)
        weighting = RevisitWeighting(**settings.pop("weighting", {}))
        return cls(**settings, weighting=weighting)


class FusableModel(Protocol):
    """What fusion needs of a latent diffusion SR model (``satsr.models.ldm.LatentDiffusionSR`` has it)."""

    autoencoder: KLAutoencoder | SpaceToDepth
    precond: EDMPrecond
    bands: tuple[str, ...]
    scale: int
    sigma_min: float
    sigma_max: float
    default_steps: int
    size_multiple: int  # LR sides must be multiples of it (padded otherwise)
    lr_consistency: bool

    @property
    def time_conditioned(self) -> bool: ...

    def reference_sr(self, lr: Tensor) -> Tensor: ...

    def condition(self, lr: Tensor, reference: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    def denoiser(self, cond: Tensor, **kwargs: Tensor) -> DenoiseFn: ...

    def run_sampler(
        self, denoise: DenoiseFn, x: Tensor, sigmas: Tensor, noise: SeededNoise
    ) -> tuple[Tensor, Tensor | None]: ...

    def finish(
        self,
        z_ref: Tensor,
        residual: Tensor,
        mean: Tensor | None,
        lr: Tensor,
        reference: Tensor,
        project_onto: Tensor | None = None,
    ) -> Tensor: ...

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
    height, width = cond.lr.shape[-2:]
    run = _fuse_anchored if config.method == "anchored" else _fuse_satdiffmoe
    sr = run(model, cond, seed, config, origin)
    return sr[..., : height * model.scale, : width * model.scale]


def _fuse_anchored(
    model: FusableModel, cond: Conditioning, seed: int, config: FusionConfig, origin: tuple[int, int]
) -> Tensor:
    assert cond.dt_days is not None  # checked by fuse_revisits
    dts = [float(d) for d in cond.dt_days[0]]
    aligned = align_revisits(cond.lr[0], dts, config.weighting)
    others = sorted(
        (i for i in range(len(dts)) if i != aligned.anchor and float(aligned.weights[i].max()) > 0),
        key=lambda i: -float(aligned.weights[i].mean()),
    )
    keep = [aligned.anchor, *others[: config.max_trajectories - 1]]  # the anchor first
    lrs = pad_to_multiple(aligned.lrs[keep], model.size_multiple)
    weights = pad_to_multiple(aligned.weights[keep][:, None], model.size_multiple).to(lrs.dtype)
    reference = model.reference_sr(lrs)
    cond_in, z_ref = model.condition(lrs, reference)
    if z_ref.shape[-2:] != weights.shape[-2:]:
        raise ValueError(f"anchored fusion needs latents on the LR grid, got {tuple(z_ref.shape[-2:])}")
    kwargs = {"dt_days": cond.dt_days[0][keep]} if model.time_conditioned else {}
    steps = config.steps_for(model)
    sigmas = karras_sigmas(steps, model.sigma_min, model.sigma_max, device=lrs.device).to(lrs.dtype)
    # Trajectory i draws as sample i of ``satsr upscale --seed seed`` would (sample 0 for all with shared
    # noise): one revisit fused is that revisit upscaled, and fusion is scored against the same draw.
    seeds = [mix_seed(seed, 0 if config.shared_noise else i) for i in range(len(keep))]
    x = torch.stack([field_noise(s, origin, z_ref.shape[1:]) for s in seeds])
    x = x.to(device=lrs.device, dtype=z_ref.dtype) * float(sigmas[0])
    pull = WeightedPull(
        model.denoiser(cond_in, **kwargs), weights, config.pull_strength, z_ref, config.pull_agreement,
        below_sigma=math.inf if config.pull_mean else math.sqrt(float(sigmas[0]) * float(sigmas[1])),
    )  # fmt: skip
    step_noise = SeededNoise([mix_seed(s, origin) for s in seeds], lrs.device)
    residual, mean = model.run_sampler(pull, x, sigmas, step_noise)
    anchor_mean = None if mean is None else mean[:1]
    target = None
    if config.project_onto == "composite":  # the aligned revisits' weighted mean, in the anchor's radiometry
        w = pad_to_multiple(aligned.weights[:, None], model.size_multiple).to(lrs.dtype)
        every = pad_to_multiple(aligned.lrs, model.size_multiple)
        target = (w * every).sum(0, keepdim=True) / w.sum(0, keepdim=True)
    sr = model.finish(z_ref[:1], residual[:1], anchor_mean, lrs[:1], reference[:1], target)
    if config.project_onto == "revisits" and model.lr_consistency:
        sr = _project_to_revisits(model, sr, aligned, keep, lrs[:1])
    return sr


def _project_to_revisits(
    model: FusableModel, sr: Tensor, aligned: AlignedRevisits, used: Sequence[int], anchor: Tensor
) -> Tensor:
    """``sr`` back-projected onto the revisits ``used`` (those sampled; the anchor first) that weigh at
    least ``MIN_PROJECTION_WEIGHT`` somewhere, each on its own grid in the anchor's radiometry, then onto
    the anchor again: what the anchor saw stays the anchor's, and the others fill in what its grid aliased
    away. With no such other revisit, ``sr`` is returned as it is."""
    used = [
        i for i in used if i == aligned.anchor or float(aligned.weights[i].max()) >= MIN_PROJECTION_WEIGHT
    ]
    if len(used) < 2:
        return sr
    degrade = sensor_degradation(model.scale, model.bands)
    lrs = pad_to_multiple(aligned.harmonised[used], model.size_multiple).to(sr.dtype)
    weights = pad_to_multiple(aligned.weights[used][:, None], model.size_multiple)[:, 0]
    shifts = [aligned.shifts[i] for i in used]
    sr = project_to_revisits(sr, lrs, shifts, weights, degrade, MULTI_FRAME_ITERATIONS)
    return project_to_lr(sr, anchor, degrade, DEFAULT_ITERATIONS)


def _fuse_satdiffmoe(
    model: FusableModel, cond: Conditioning, seed: int, config: FusionConfig, origin: tuple[int, int]
) -> Tensor:
    assert cond.dt_days is not None  # checked by fuse_revisits
    lrs, n = cond.lr[0], cond.lr.shape[1]
    lrs = pad_to_multiple(lrs, model.size_multiple)
    cond_in, z_ref = model.condition(lrs)
    kwargs = {"dt_days": cond.dt_days[0]} if model.time_conditioned else {}
    steps = config.steps_for(model)
    sigmas = karras_sigmas(steps, model.sigma_min, model.sigma_max, device=lrs.device).to(lrs.dtype)
    trajectory_seeds = [mix_seed(seed, (i, 0)) for i in range(n)]
    x = torch.stack([field_noise(s, origin, z_ref.shape[1:]) for s in trajectory_seeds])
    x = x.to(device=lrs.device, dtype=z_ref.dtype) * float(sigmas[0])
    distance = latent_lpips_distance(
        model.autoencoder.decode_latent, model.bands, config.alpha, next(model.parameters()).device
    )
    center = find_center(distance, config.center_steps, batch=config.center_batch, seed=seed)
    fusion = TrajectoryFusion(
        bind(model.precond, cond_in, **kwargs), sigmas, center if n > 1 else l2_center, config.every,
        config.pull_strength, z_ref,
    )  # fmt: skip
    sample = get_sampler(config.sampler)
    latents = z_ref + sample(fusion, x, sigmas, noise=SeededNoise(trajectory_seeds, lrs.device))
    sr = model.autoencoder.decode_latent(center(latents) if n > 1 else latents)
    if model.lr_consistency:
        median = lrs.median(dim=0, keepdim=True).values
        sr = project_to_lr(sr, median, sensor_degradation(model.scale, model.bands), DEFAULT_ITERATIONS)
    return sr
