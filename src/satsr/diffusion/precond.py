"""EDM preconditioning: the one wrapper between a raw network and both the loss and every sampler.

``D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))`` with the coefficients of
Karras et al. 2022, Table 1 ("Ours") and Appendix B.6: unit-variance network input and training target
for data of standard deviation ``sigma_data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from satsr.types import Conditioning, DenoiseFn

#: Standard deviation of the data the denoiser sees (EDM's default, suited to data in [-1, 1]).
EDM_SIGMA_DATA = 0.5

#: What a conditional denoiser receives besides (x, sigma): a tensor, a Conditioning record or nothing.
Cond = Tensor | Conditioning | None


class RawNet(Protocol):
    """The network ``F`` inside :class:`EDMPrecond`; ``c_noise`` has shape ``(B,)``."""

    def __call__(self, x_in: Tensor, c_noise: Tensor, cond: Cond, **kwargs: Any) -> Tensor: ...


class ConditionalDenoiser(Protocol):
    """``D(x, sigma, cond, **kwargs)``, e.g. an :class:`EDMPrecond`; :func:`bind` makes it a DenoiseFn."""

    def __call__(self, x: Tensor, sigma: Tensor, cond: Cond = None, **kwargs: Any) -> Tensor: ...


@dataclass(frozen=True)
class EDMScalings:
    """The four preconditioning coefficients, each shaped to broadcast against ``x``."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def batch_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """``sigma`` as ``(B,)`` on ``x``'s device, from a float, a 0-d, ``(1,)``, ``(B,)`` or ``(B, 1, ...)``."""
    sigma = torch.as_tensor(sigma, device=x.device).reshape(-1)
    if sigma.numel() == 1:
        return sigma.expand(x.shape[0])
    if sigma.numel() != x.shape[0]:
        raise ValueError(f"sigma has {sigma.numel()} values for a batch of {x.shape[0]}")
    return sigma


def edm_scalings(sigma: Tensor, sigma_data: float, ndim: int) -> EDMScalings:
    """Karras et al. 2022, Table 1: ``c_skip = sd^2 / (sigma^2 + sd^2)``,
    ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``, ``c_in = 1 / sqrt(sigma^2 + sd^2)``,
    ``c_noise = ln(sigma) / 4``; computed in float64.

    ``sigma`` is ``(B,)``; the first three come back shaped ``(B, 1, ..., 1)`` for an ``ndim``-D batch,
    ``c_noise`` as ``(B,)``. ``sigma`` must be > 0 (``c_noise`` is ``-inf`` at 0).
    """
    sigma = sigma.to(torch.float64)
    total = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = total.rsqrt()
    shape = (-1,) + (1,) * (ndim - 1)
    return EDMScalings(c_skip.reshape(shape), c_out.reshape(shape), c_in.reshape(shape), sigma.log() / 4)


class EDMPrecond(nn.Module):
    """Wraps a raw network ``F(x_in, c_noise, cond, **kw)`` into the denoiser ``D(x, sigma, cond, **kw)``.

    The same forward serves :func:`satsr.diffusion.losses.edm_loss` and, through :func:`bind`, every
    sampler (Karras et al. 2022, Sec. 5 and Table 1).
    """

    def __init__(
        self,
        net: nn.Module,  # raw network F, called as net(c_in * x, c_noise, cond, **kwargs), same shape as x
        sigma_data: float = EDM_SIGMA_DATA,  # standard deviation of the (latent) data
    ) -> None:
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0; got {sigma_data}")
        self.net = net
        self.sigma_data = sigma_data

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Cond = None, **kwargs: Any) -> Tensor:
        """The denoised estimate of ``x`` at noise level ``sigma`` (> 0; ``(B,)`` or broadcastable)."""
        scalings = edm_scalings(batch_sigma(sigma, x), self.sigma_data, x.ndim)
        dtype = x.dtype
        f_x = self.net(x * scalings.c_in.to(dtype), scalings.c_noise.to(dtype), cond, **kwargs)
        if f_x.shape != x.shape:
            raise ValueError(f"the raw network returned shape {tuple(f_x.shape)} for input {tuple(x.shape)}")
        return scalings.c_skip.to(dtype) * x + scalings.c_out.to(dtype) * f_x.to(dtype)


def bind(denoiser: ConditionalDenoiser, cond: Cond = None, **kwargs: Any) -> DenoiseFn:
    """Close ``denoiser`` over its conditioning so that samplers see only ``(x, sigma)``."""

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return denoiser(x, sigma, cond, **kwargs)

    return denoise
