"""Multi-revisit fusion of sampling trajectories, two DenoiseFn wrappers: SatDiffMoE's (Song et al. 2024,
Alg. 1, ``TrajectoryFusion``) and a weighted pull on every step (``WeightedPull``).

N trajectories, one per low-resolution revisit, are sampled as one batch. Every ``every`` steps the
clean estimates ``z0_i = D(x_i, sigma)`` (Tweedie) are pulled toward their center
``z0_bar = argmin_x sum_i d(x, z0_i)``: ``z0_i' = (1 - strength) z0_i + strength z0_bar``, and the DDIM
step (eta = 0) continues with each trajectory's noise component ``(x_i - z0_i) / sigma`` unchanged
(Song et al. 2024, Eq. 6-7, after Chung et al. 2024).

A deterministic DDIM / Euler step is ``x_next = D + r (x - D)`` with ``r = sigma_next / sigma``. For
it to become ``z0' + r (x - z0)`` the wrapper returns ``(z0' - r z0) / (1 - r)``; so it needs the
sigma schedule, and is exact only under ``sample_ddim(eta=0)`` and ``sample_euler``: multistep and
stochastic samplers use D differently, and refuse it (``compatible_samplers``,
``satsr.diffusion.samplers.check_compatible``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from satsr.types import DenoiseFn

#: Center of a batch of clean estimates (N, ...) -> (1, ...).
CenterFn = Callable[[Tensor], Tensor]
#: Distance to a fixed set of estimates: ``distance(targets)`` prepares them once (N, ...), and the
#: function it returns maps a candidate (1, ...) and the indices of some targets (n,) to (n,) distances.
DistanceFn = Callable[[Tensor], Callable[[Tensor, Tensor], Tensor]]


def pointwise(d: Callable[[Tensor, Tensor], Tensor]) -> DistanceFn:
    """A ``DistanceFn`` from a plain distance ``d(candidate (1, ...), targets (n, ...)) -> (n,)``."""
    return lambda targets: lambda x, pick: d(x, targets[pick])


def l2_center(z0: Tensor) -> Tensor:
    """The minimiser of the summed squared L2 distance: the mean."""
    return z0.mean(dim=0, keepdim=True)


def find_center(
    distance: DistanceFn,
    steps: int = 10,
    lr: float = 0.05,
    batch: int = 4,
    seed: int = 0,
) -> CenterFn:
    """A ``CenterFn`` that minimises ``sum_i distance(x, z0_i)`` by Adam from the mean.

    Each step uses a random batch of at most ``batch`` of the estimates (Song et al. 2024, Sec. 3.2:
    cheaper, and the revisits are redundant); ``seed`` makes the choice reproducible. Gradients are
    taken for ``x`` only (networks inside ``distance`` keep no gradients of their weights).
    """

    def center(z0: Tensor) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        x = z0.mean(dim=0, keepdim=True).detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=lr)
        targets = z0.detach()
        measure = distance(targets)
        for _ in range(steps):
            pick = torch.randperm(len(targets), generator=generator)[:batch].to(targets.device)
            with torch.enable_grad():
                (x.grad,) = torch.autograd.grad(measure(x, pick).sum(), [x])
            optimizer.step()
        return x.detach()

    return center


class TrajectoryFusion:
    """``DenoiseFn`` over a batch of N trajectories of one scene that fuses them every ``every`` steps.

    ``sigmas`` is the schedule the sampler runs (ending in 0); the wrapper finds the current step from
    ``sigma``. With N = 1 it returns ``denoise``'s estimate unchanged: plain conditional sampling.
    ``offset`` (N, ...) is added to the estimates before their center is sought, for denoisers of
    residuals whose clean image is ``offset + D`` (each revisit's reference latent).
    """

    #: The samplers whose step it back-solves (DDIM with eta 0, and Euler, the same step); others refuse it.
    compatible_samplers: ClassVar[frozenset[str]] = frozenset({"ddim", "euler"})

    def __init__(
        self,
        denoise: DenoiseFn,
        sigmas: Tensor | Sequence[float],
        center: CenterFn = l2_center,
        every: int = 5,
        strength: float = 0.1,
        offset: Tensor | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        self.denoise, self.center, self.every, self.strength = denoise, center, every, strength
        self.sigmas = [float(s) for s in sigmas]
        self.offset = offset  # added to the estimates before the center is sought (e.g. a reference latent)
        self.fused_steps: list[int] = []  # the steps at which trajectories were pulled together

    def _step(self, sigma: Tensor) -> int:
        value = float(sigma.flatten()[0])
        for i, s in enumerate(self.sigmas[:-1]):
            if math.isclose(value, s, rel_tol=1e-5):
                return i
        raise ValueError(f"sigma {value} is not a step of the schedule this fusion was built for")

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        denoised = self.denoise(x, sigma)
        i = self._step(sigma)
        if len(x) == 1 or i % self.every:
            return denoised
        offset = self.offset if self.offset is not None else torch.zeros_like(denoised)
        center = self.center(denoised + offset).to(denoised.dtype)
        fused = (1 - self.strength) * denoised + self.strength * (center - offset)
        self.fused_steps.append(i)
        r = self.sigmas[i + 1] / self.sigmas[i]
        # The sampler then computes fused + r * (x - denoised): the noise component is unchanged.
        return (fused - r * denoised) / (1 - r)


class WeightedPull:
    """``DenoiseFn`` over a batch of N trajectories of one scene that pulls every clean estimate toward their
    weighted center on every call: ``z_i' = (1 - strength) z_i + strength c`` with, per pixel,
    ``c = sum_i a_i w_i z_i / sum_i a_i w_i``.

    ``weights`` (N, 1, h, w) say how far each trajectory is trusted at each latent pixel (revisit
    weights, ``satsr.data.revisit_weights``); ``offset`` (N, ...) is added to the estimates before the
    center is taken (each revisit's reference latent, for denoisers of residuals). It changes the estimate,
    as guidance does, so it runs under any sampler; with ``strength`` 1 every trajectory follows the
    weighted mean of the N denoisers' estimates (an ensemble of experts, one per revisit).

    ``agreement_scale`` (None: ``a_i`` = 1) weighs each trajectory by how far its estimate agrees with the
    first trajectory's (the anchor's) at this step, ``a_i = 1 / (1 + (d_i / agreement_scale)^2)`` with
    ``d_i`` the root-mean-square difference over channels per pixel: where another revisit would bring
    detail the anchor's estimate does not have, the anchor keeps its own. Estimates at noise levels of at
    least ``below_sigma`` are returned unpulled (the first, posterior-mean estimate, for one).
    """

    def __init__(
        self,
        denoise: DenoiseFn,
        weights: Tensor,
        strength: float = 1.0,
        offset: Tensor | None = None,
        agreement_scale: float | None = None,
        below_sigma: float = math.inf,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if weights.ndim != 4 or weights.shape[1] != 1:
            raise ValueError(f"weights must be (N, 1, h, w), got {tuple(weights.shape)}")
        if agreement_scale is not None and agreement_scale <= 0:
            raise ValueError(f"agreement_scale must be > 0, got {agreement_scale}")
        self.denoise, self.weights, self.strength, self.offset = denoise, weights, strength, offset
        self.agreement_scale, self.below_sigma = agreement_scale, below_sigma

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        denoised = self.denoise(x, sigma)
        if len(x) == 1 or self.strength == 0 or float(sigma.flatten()[0]) >= self.below_sigma:
            return denoised
        clean = denoised if self.offset is None else denoised + self.offset
        w = self.weights.to(clean.dtype)
        if self.agreement_scale is not None:
            d = (clean - clean[:1]).float().pow(2).mean(1, keepdim=True).sqrt()
            w = w / (1 + (d / self.agreement_scale) ** 2).to(clean.dtype)
        center = (w * clean).sum(0, keepdim=True) / w.sum(0, keepdim=True).clamp_min(1e-12)
        return denoised + self.strength * (center - clean)
