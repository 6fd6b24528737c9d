"""Types shared by models, diffusion and pipelines: the denoiser contract and the conditioning record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from satsr.defaults import DEFAULT_SCALE


class DenoiseFn(Protocol):
    """A denoiser as every sampler sees it: ``D(x, sigma)``, the x0-prediction (Karras et al. 2022, Eq. 2).

    ``x`` is a batch ``(B, C, h, w)`` (any ``(B, ...)`` works for the samplers) of noisy data
    ``x0 + sigma * n``; ``sigma`` has shape ``(B,)`` or is broadcastable to it (a 0-d tensor).
    The return value has the shape of ``x``. Conditioning is bound beforehand (a closure, see
    :func:`satsr.diffusion.precond.bind`), and guidance or multi-image fusion are wrappers
    ``DenoiseFn -> DenoiseFn``; a stateful wrapper may count its calls or read ``sigma``.
    """

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Conditioning:
    """What a conditional super-resolution denoiser is told about its low-resolution input.

    lr: low-resolution reflectance, ``(B, C, h, w)`` for one image or ``(B, T, C, h, w)`` for a
        time series of ``T`` acquisitions (multi-image fusion).
    scale: super-resolution factor (HR pixels per LR pixel along one axis); any float > 0.
    dt_days: acquisition time of each LR image relative to the target, in days: ``(B, T)`` with a
        5-D ``lr``, ``(B,)`` with a 4-D one; ``None`` when unknown or irrelevant.
    """

    lr: Tensor
    scale: float = DEFAULT_SCALE
    dt_days: Tensor | None = None

    def __post_init__(self) -> None:
        if self.lr.ndim not in (4, 5):
            raise ValueError(f"lr must be (B, C, h, w) or (B, T, C, h, w); got shape {tuple(self.lr.shape)}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0; got {self.scale}")
        if self.dt_days is not None:
            expected = tuple(self.lr.shape[:2]) if self.lr.ndim == 5 else (self.lr.shape[0],)
            if tuple(self.dt_days.shape) != expected:
                raise ValueError(
                    f"dt_days must have shape {expected} to match lr {tuple(self.lr.shape)}; "
                    f"got {tuple(self.dt_days.shape)}"
                )

    @property
    def batch_size(self) -> int:
        return int(self.lr.shape[0])
