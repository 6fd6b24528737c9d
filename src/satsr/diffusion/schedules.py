"""Noise-level schedules for sampling: descending float64 sigmas that end in 0.

Every schedule is a plain function returning ``n + 1`` values ``sigma_0 > ... > sigma_{n-1} > 0 = sigma_n``
in the variance-exploding (VE) parametrisation ``x_t = x0 + sigma * n`` used by every sampler
(Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models").
The math is float64 (as in NVlabs/edm) so that small sigmas and their ratios stay exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: EDM defaults (Karras et al. 2022, Table 1): sigma range and the schedule's curvature rho.
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EDM_RHO = 7.0
#: Length and linear beta range of the DDPM training chain (Ho et al. 2020: 1e-4..0.02; Stable Diffusion
#: and most latent diffusion models: 0.00085..0.012).
DDPM_TIMESTEPS = 1000
LDM_BETA_START = 0.00085
LDM_BETA_END = 0.012


def _with_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(
    n: int,
    sigma_min: float = EDM_SIGMA_MIN,
    sigma_max: float = EDM_SIGMA_MAX,
    rho: float = EDM_RHO,
    device: torch.device | str | None = None,
) -> Tensor:
    """The EDM time discretisation (Karras et al. 2022, Eq. 5), with 0 appended.

    ``sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho`` for
    ``i = 0..n-1``: ``n`` denoiser evaluations for a first-order sampler. ``rho = 7`` spends more steps at
    low noise; ``rho = 1`` is uniform in sigma. Returns a float64 tensor of length ``n + 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0; got {rho}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64, device=device)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return _with_zero(sigmas)


def ddpm_alphas_cumprod(
    beta_start: float = LDM_BETA_START,
    beta_end: float = LDM_BETA_END,
    timesteps: int = DDPM_TIMESTEPS,
    device: torch.device | str | None = None,
) -> Tensor:
    """``abar_t = prod_{s<=t} (1 - beta_s)`` of a linear-beta DDPM (Ho et al. 2020, Sec. 4), float64."""
    if not 0 < beta_start < beta_end < 1:
        raise ValueError(f"need 0 < beta_start < beta_end < 1; got {beta_start}, {beta_end}")
    if timesteps < 2:
        raise ValueError(f"timesteps must be >= 2; got {timesteps}")
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64, device=device)
    return torch.cumprod(1 - betas, dim=0)


def vp_sigmas(
    n: int,
    beta_start: float = LDM_BETA_START,
    beta_end: float = LDM_BETA_END,
    timesteps: int = DDPM_TIMESTEPS,
    device: torch.device | str | None = None,
) -> Tensor:
    """The noise levels of a linear-beta DDPM, subsampled to ``n`` steps, with 0 appended.

    Timesteps ``t_i = i * (timesteps // n)`` for ``i = 0..n-1`` (the "uniform" skip of DDIM, Song et al.
    2021, Sec. 4.2 and their code's ``range(0, T, T // S)``), visited from the largest down; each is mapped
    to the VE noise level of the same signal-to-noise ratio, ``sigma = sqrt((1 - abar_t) / abar_t)``
    (Karras et al. 2022, Table 1, "VP" column; Song et al. 2021, Eq. 12 rewritten for ``x / sqrt(abar)``).
    A VP sampler's state is ``x_vp = x / sqrt(1 + sigma^2)``. Returns float64 of length ``n + 1``.
    """
    if not 1 <= n <= timesteps:
        raise ValueError(f"n must be in [1, {timesteps}]; got {n}")
    alphas_cumprod = ddpm_alphas_cumprod(beta_start, beta_end, timesteps, device)
    t = torch.arange(n, device=alphas_cumprod.device) * (timesteps // n)
    abar = alphas_cumprod[t.flip(0)]
    return _with_zero(((1 - abar) / abar).sqrt())
