"""A short DDPM chain run to the end in training and sampling (E2DiffSR, Wu et al., Alg. 1 and 2).

E2DiffSR (after DiffIR, Xia et al. 2023) uses only ``T = 4`` steps with ``beta_t`` linear from
``beta_1 = 0.99`` down to ``beta_T = 0.1`` (Sec. IV-B), and trains by running all ``T`` reverse steps
from ``z_T = sqrt(abar_T) z0 + sqrt(1 - abar_T) eps`` (Eq. 8) and penalising the final estimate,
instead of sampling one timestep per example. These are pure functions of an ``EpsFn``; no model
is imported here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: E2DiffSR's chain (Wu et al., Sec. IV-B): T steps, beta linear from BETA_START (t = 1) to BETA_END (t = T).
UNROLLED_STEPS = 4
BETA_START = 0.99
BETA_END = 0.1

#: ``eps_fn(z_t, t)`` -> predicted noise, with ``t`` an int in 1..T (the same for the whole batch).
EpsFn = Callable[[Tensor, int], Tensor]
#: ``noise_fn(like)`` -> standard normal noise shaped like ``like`` (e.g. a ``SeededNoise``).
NoiseFn = Callable[[Tensor], Tensor]


def linear_betas(steps: int = UNROLLED_STEPS, start: float = BETA_START, end: float = BETA_END) -> Tensor:
    """``beta_1 .. beta_T`` linear from ``start`` to ``end`` (float64, index ``t - 1``)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if not (0 < start < 1 and 0 < end < 1):
        raise ValueError(f"betas must lie in (0, 1); got start={start}, end={end}")
    return torch.linspace(start, end, steps, dtype=torch.float64)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``abar_t = prod_{i <= t} (1 - beta_i)`` (Wu et al., Eq. 8), float64, index ``t - 1``."""
    return torch.cumprod(1 - betas.double(), dim=0)


def q_sample(z0: Tensor, t: int, noise: Tensor, betas: Tensor) -> Tensor:
    """``z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps`` (Eq. 8) for ``t`` in 1..T."""
    abar = float(alphas_cumprod(betas)[t - 1])
    return abar**0.5 * z0 + (1 - abar) ** 0.5 * noise


def reverse_step(z_t: Tensor, eps: Tensor, t: int, betas: Tensor) -> Tensor:
    """The DDPM posterior mean ``(z_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)`` (Alg. 1, line 10).

    (Eq. 10 of the paper prints a ``+``; Alg. 1 and 2 and Ho et al. 2020, Eq. 11, have the ``-``.)
    """
    beta = float(betas[t - 1])
    abar = float(alphas_cumprod(betas)[t - 1])
    return (z_t - beta / (1 - abar) ** 0.5 * eps) / (1 - beta) ** 0.5


def eps_from_x0(z_t: Tensor, x0: Tensor, t: int, betas: Tensor) -> Tensor:
    """The noise Eq. 8 implies for a clean estimate ``x0``: ``(z_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)``.

    With it, a network predicting ``x0`` serves as the paper's noise predictor; at ``t = 1`` (where
    ``abar_1 = alpha_1``) the reverse step then returns ``x0`` exactly.
    """
    abar = float(alphas_cumprod(betas)[t - 1])
    return (z_t - abar**0.5 * x0) / (1 - abar) ** 0.5


def unrolled_reverse(
    eps_fn: EpsFn, z_T: Tensor, betas: Tensor, noise: NoiseFn | None = None, eta: float = 0.0
) -> Tensor:
    """Run the reverse chain ``t = T .. 1`` from ``z_T`` and return ``z_0`` (Alg. 1, lines 8-11).

    ``eta = 0`` is Alg. 1 (the training loop: deterministic given ``z_T``), which we also sample with,
    so that sampling is what training optimised. ``eta = 1`` adds ``sqrt(beta_t) xi`` after every step
    but the last, as DDPM does (Alg. 2 of the paper adds it after the last step too, which would leave
    ``z_0`` with noise of std ~1 at ``beta_1 = 0.99``). Differentiable: gradients flow through all steps.
    """
    if eta and noise is None:
        raise ValueError("eta > 0 needs a noise function")
    z = z_T
    for t in range(len(betas), 0, -1):
        z = reverse_step(z, eps_fn(z, t), t, betas)
        if eta and t > 1:
            assert noise is not None
            z = z + eta * float(betas[t - 1]) ** 0.5 * noise(z)
    return z
