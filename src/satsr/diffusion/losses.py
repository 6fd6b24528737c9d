"""Training losses for the preconditioned denoiser."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from satsr.diffusion.precond import Cond, EDMPrecond

#: Lognormal training noise distribution ln(sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, Table 1).
EDM_P_MEAN = -1.2
EDM_P_STD = 1.2


def edm_loss(
    precond: EDMPrecond,
    x0: Tensor,
    cond: Cond = None,
    *,
    generator: torch.Generator | None = None,
    P_mean: float = EDM_P_MEAN,
    P_std: float = EDM_P_STD,
    mask: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    """The EDM denoising loss (Karras et al. 2022, Eq. 2 with the weighting and noise law of Table 1).

    ``E_sigma,n [ lambda(sigma) || D(x0 + sigma n, sigma) - x0 ||^2 ]`` with
    ``ln(sigma) ~ N(P_mean, P_std^2)`` and ``lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2``, which makes
    the raw network's effective target unit-variance at every sigma. ``D`` is ``precond``'s forward, the
    same one the samplers use; ``cond`` and ``kwargs`` go to it unchanged. One sigma per sample.

    mask: optional, broadcastable to ``x0``; 1 where a pixel counts, 0 where it is nodata. The loss is then
        the weighted mean over valid elements only (an all-nodata batch gives 0, with zero gradient).
    generator: draws both sigma and the noise, for reproducible tests. Returns a scalar tensor.
    """
    batch, sd = x0.shape[0], precond.sigma_data
    ln_sigma = torch.randn(batch, generator=generator, device=x0.device, dtype=torch.float32)
    sigma = (ln_sigma * P_std + P_mean).exp().to(x0.dtype)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    x_t = x0 + noise * sigma.reshape(shape)
    denoised = precond(x_t, sigma, cond, **kwargs)
    weight = ((sigma**2 + sd**2) / (sigma * sd) ** 2).reshape(shape)
    per_element = weight * (denoised - x0) ** 2
    if mask is None:
        return per_element.mean()
    mask = mask.to(per_element.dtype).expand_as(per_element)
    # clamp, not a check: a host sync per step is costly, and an all-nodata batch rightly contributes 0
    return (per_element * mask).sum() / mask.sum().clamp_min(1.0)
