"""Samplers: plain functions of ``(denoise, x, sigmas)`` in the style of k-diffusion (Crowson).

Each ``sample_xxx(denoise, x, sigmas, *, noise=None, callback=None)`` integrates from ``sigmas[0]`` down to
``sigmas[-1] == 0`` in the VE parametrisation ``x = x0 + sigma n`` (Karras et al. 2022). ``x`` is the initial
noise already multiplied by ``sigmas[0]``. A sampler calls nothing but ``denoise`` (a
:class:`~satsr.types.DenoiseFn`) and ``noise`` (a ``randn_like`` replacement, so each sample of a batch can
have its own seed, see :mod:`satsr.diffusion.noise`); it never imports a model. Guidance and multi-image
fusion are ``DenoiseFn -> DenoiseFn`` wrappers: a wrapper sees every ``(x, sigma)`` the sampler asks
about, in order, and may change the denoised estimate it returns. A wrapper whose algebra holds only
under some samplers names them in ``compatible_samplers``; every other sampler refuses it
(:func:`check_compatible`).

Step coefficients are computed from float64 sigmas as Python floats; the state keeps ``x``'s dtype.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from satsr.types import DenoiseFn

#: A ``torch.randn_like`` replacement.
NoiseFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a callback is told after step ``i`` computed ``denoised = D(x, sigma)`` (before the update)."""

    i: int
    x: Tensor
    sigma: float
    sigma_next: float
    denoised: Tensor


Callback = Callable[[StepInfo], None]


class Sampler(Protocol):
    def __call__(
        self,
        denoise: DenoiseFn,
        x: Tensor,
        sigmas: Tensor,
        *,
        noise: NoiseFn | None = None,
        callback: Callback | None = None,
    ) -> Tensor: ...


def check_sigmas(sigmas: Tensor) -> list[float]:
    """``sigmas`` as Python floats after checking they are 1-D, strictly descending, > 0 and end in 0."""
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be 1-D with at least 2 values; got shape {tuple(sigmas.shape)}")
    values: list[float] = sigmas.detach().to("cpu", torch.float64).tolist()
    if values[-1] != 0:
        raise ValueError(f"sigmas must end in 0; the last is {values[-1]}")
    if any(a <= b for a, b in itertools.pairwise(values)) or not all(map(math.isfinite, values)):
        raise ValueError(f"sigmas must be finite and strictly descending; got {values}")
    return values


def check_compatible(denoise: DenoiseFn, sampler: str) -> None:
    """Refuse a denoiser wrapper whose algebra holds only under some samplers (the names in its
    ``compatible_samplers``, e.g. ``TrajectoryFusion``'s back-solved DDIM step) for any other one."""
    allowed = getattr(denoise, "compatible_samplers", None)
    if allowed is not None and sampler not in allowed:
        raise ValueError(
            f"{type(denoise).__name__} is exact only under the {' or '.join(sorted(allowed))} sampler, "
            f"not {sampler}"
        )


def _denoise(denoise: DenoiseFn, x: Tensor, sigma: float) -> Tensor:
    return denoise(x, x.new_full((x.shape[0],), sigma))


def _report(callback: Callback | None, i: int, x: Tensor, sigmas: list[float], denoised: Tensor) -> None:
    if callback is not None:
        callback(StepInfo(i, x, sigmas[i], sigmas[i + 1], denoised))


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """``(sigma_down, sigma_up)`` with ``sigma_down^2 + sigma_up^2 = sigma_to^2``, as k-diffusion's
    get_ancestral_step.

    ``sigma_up = eta sigma_to sqrt(1 - sigma_to^2 / sigma_from^2)`` is DDIM's ``sigma_t(eta)`` of Song et al.
    2021, Eq. 16, in VE units: with ``sigma^2 = (1 - abar) / abar`` their
    ``eta^2 (1 - abar_prev)/(1 - abar) (1 - abar/abar_prev)`` divided by ``abar_prev`` is exactly
    ``eta^2 sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2``.
    """
    if eta == 0:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * math.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2))
    return math.sqrt(sigma_to**2 - sigma_up**2), sigma_up


@torch.no_grad()
def sample_euler(
    denoise: DenoiseFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Euler on the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` (Karras et al. 2022,
    Alg. 2 without churn). ``noise`` is unused (deterministic)."""
    check_compatible(denoise, "euler")
    values = check_sigmas(sigmas)
    for i in range(len(values) - 1):
        denoised = _denoise(denoise, x, values[i])
        _report(callback, i, x, values, denoised)
        # x + (sigma_next - sigma) (x - denoised) / sigma, arranged so that sigma_next = 0 gives denoised
        x = denoised + (values[i + 1] / values[i]) * (x - denoised)
    return x


@torch.no_grad()
def sample_heun(
    denoise: DenoiseFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1), Euler on the last step to sigma = 0.

    ``2n - 1`` denoiser calls for ``n`` steps. ``noise`` is unused (deterministic).
    """
    check_compatible(denoise, "heun")
    values = check_sigmas(sigmas)
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        denoised = _denoise(denoise, x, sigma)
        _report(callback, i, x, values, denoised)
        x_euler = denoised + (sigma_next / sigma) * (x - denoised)
        if sigma_next == 0:
            x = x_euler
            continue
        d = (x - denoised) / sigma
        d_next = (x_euler - _denoise(denoise, x_euler, sigma_next)) / sigma_next
        x = x + (sigma_next - sigma) * (d + d_next) / 2
    return x


@torch.no_grad()
def sample_ddim(
    denoise: DenoiseFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
    eta: float = 0.0,
) -> Tensor:
    """DDIM (Song et al. 2021, Eq. 12) in VE form: ``x_next = D + sigma_down (x - D) / sigma + sigma_up z``.

    Dividing Eq. 12 by ``sqrt(abar_prev)`` and writing ``sigma^2 = (1 - abar)/abar`` turns the predicted-x0
    term into ``D`` and the "direction pointing to x_t" into ``sigma_down * eps``; the random term has
    standard deviation ``sigma_up`` (see :func:`ancestral_step`). ``eta = 0`` is deterministic DDIM, which
    coincides with :func:`sample_euler` (Karras et al. 2022, Sec. 3); ``eta = 1`` is DDPM-like ancestral
    sampling (k-diffusion's sample_euler_ancestral). ``z`` comes from ``noise`` (default randn_like).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0; got {eta}")
    check_compatible(denoise, "ddim" if eta == 0 else "ddim_ancestral")
    values = check_sigmas(sigmas)
    randn_like = torch.randn_like if noise is None else noise
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        denoised = _denoise(denoise, x, sigma)
        _report(callback, i, x, values, denoised)
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        x = denoised + (sigma_down / sigma) * (x - denoised)
        if sigma_up > 0:
            x = x + sigma_up * randn_like(x)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoise: DenoiseFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    noise: NoiseFn | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2), as k-diffusion's sample_dpmpp_2m.

    In ``lambda = -ln(sigma)`` with step ``h``: ``x_next = r x + (1 - r) D'`` with ``r = sigma_next/sigma =
    exp(-h)`` and ``D' = (1 + 1/(2 q)) D_i - D_{i-1} / (2 q)``, ``q = h_prev / h``; first and last step are
    first order (``D' = D_i``, i.e. a DDIM step). One denoiser call per step; ``noise`` is unused.
    """
    check_compatible(denoise, "dpmpp_2m")
    values = check_sigmas(sigmas)
    old_denoised: Tensor | None = None
    for i in range(len(values) - 1):
        sigma, sigma_next = values[i], values[i + 1]
        denoised = _denoise(denoise, x, sigma)
        _report(callback, i, x, values, denoised)
        target = denoised
        if old_denoised is not None and sigma_next > 0:
            h = math.log(sigma / sigma_next)
            q = math.log(values[i - 1] / sigma) / h
            target = (1 + 1 / (2 * q)) * denoised - (1 / (2 * q)) * old_denoised
        x = target + (sigma_next / sigma) * (x - target)
        old_denoised = denoised
    return x


SAMPLERS: dict[str, Sampler] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
}


def get_sampler(name: str) -> Sampler:
    """The sampler registered under ``name`` in :data:`SAMPLERS`."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}") from None
