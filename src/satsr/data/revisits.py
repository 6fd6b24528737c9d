"""Simulated Sentinel-2 revisits of one high-resolution scene, for multi-revisit fusion (SatDiffMoE).

A revisit acquired ``dt`` days from the target date is made from the HR reflectance by, in order:
scene change whose size grows with ``|dt|`` (seasonal vegetation: NIR and red move in opposite
directions on vegetated pixels, in smooth patches), sub-pixel misregistration, Wald's-protocol
degradation (S2 MTF blur + decimation), illumination change (per-band gain) and haze (additive,
strongest in blue), sensor noise, and partial clouds (bright, smooth-edged, reported in a mask as an
L2A scene classification would). Every draw comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from satsr.data.degradation import wald_degrade
from satsr.data.pairs import WaldPatches
from satsr.data.registration import translate
from satsr.data.sources import Scene
from satsr.io.bands import S2_RGBN

#: Relative haze strength per band (scattering falls with wavelength).
HAZE_WEIGHT = {"B02": 1.0, "B03": 0.75, "B04": 0.55, "B08": 0.25}


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def smooth_field(height: int, width: int, cells: int, generator: torch.Generator) -> Tensor:
    """A smooth random field in [0, 1] of shape (height, width): bicubic noise on a coarse grid."""
    coarse = torch.rand(1, 1, cells + 1, cells + 1, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0, 0]
    low, high = field.min(), field.max()
    return (field - low) / (high - low + 1e-8)


def subpixel_shift(x: Tensor, dy: float, dx: float) -> Tensor:
    """Shift (C, H, W) by (dy, dx) pixels with bilinear resampling and border replication."""
    return translate(x[None], (dy, dx), mode="bilinear")[0]


@dataclass(frozen=True)
class RevisitSimulator:
    """Draws plausible revisits of an HR reflectance scene; the defaults follow S2 L1C/L2A statistics."""

    scale: int = 4
    bands: Sequence[str] = S2_RGBN
    max_shift_lr: float = 0.5  # misregistration, LR pixels (S2 multi-temporal registration < 0.3-0.5 px)
    gain: float = 0.08  # per-band illumination gain in [1 - gain, 1 + gain]
    max_haze: float = 0.02  # additive reflectance in the bluest band
    noise_std: float = 0.002  # reflectance
    cloud_probability: float = 0.3  # share of revisits with clouds
    max_cloud_cover: float = 0.4  # largest cloud share of a cloudy revisit
    change_per_half_year: float = 0.25  # largest relative NIR/red change on vegetation at |dt| >= 182 days

    def change_strength(self, dt_days: float) -> float:
        """Seasonal change: 0 at dt = 0, largest half a year away (a year later the season repeats)."""
        return self.change_per_half_year * abs(math.sin(math.pi * dt_days / 365.0))

    def simulate(self, hr: Tensor, dt_days: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One revisit of ``hr`` (C, H, W) reflectance: ``(lr (C, H/s, W/s), clear (H/s, W/s) bool)``."""
        bands = list(self.bands)
        c, h, w = hr.shape
        if c != len(bands):
            raise ValueError(f"hr has {c} bands, the simulator {len(bands)} ({', '.join(bands)})")
        x = hr.clone()
        strength = self.change_strength(dt_days)
        if strength > 0 and "B08" in bands and "B04" in bands:
            nir, red = bands.index("B08"), bands.index("B04")
            ndvi = (x[nir] - x[red]) / (x[nir] + x[red] + 1e-6)
            vegetation = ((ndvi - 0.2) / 0.4).clamp(0, 1)
            patches = 2 * smooth_field(h, w, 4, generator) - 1  # fields green up or senesce
            delta = strength * vegetation * patches
            x[nir] = x[nir] * (1 + delta)
            x[red] = x[red] * (1 - 0.5 * delta)
        shift = self.max_shift_lr * self.scale
        x = subpixel_shift(x, _uniform(generator, -shift, shift), _uniform(generator, -shift, shift))
        lr = wald_degrade(x[None], self.scale, bands)[0]
        base_gain = _uniform(generator, 1 - self.gain, 1 + self.gain)
        jitter = self.gain / 4  # bands change together, with a little spread
        gains = torch.tensor(
            [base_gain * _uniform(generator, 1 - jitter, 1 + jitter) for _ in bands], dtype=lr.dtype
        )
        haze = _uniform(generator, 0, self.max_haze)
        offsets = torch.tensor([haze * HAZE_WEIGHT.get(b, 0.5) for b in bands], dtype=lr.dtype)
        lr = lr * gains[:, None, None] + offsets[:, None, None]
        lr = lr + self.noise_std * torch.randn(lr.shape, generator=generator, dtype=lr.dtype)
        clear = torch.ones(lr.shape[1:], dtype=torch.bool)
        if float(torch.rand((), generator=generator)) < self.cloud_probability:
            cover = _uniform(generator, 0.05, self.max_cloud_cover)
            field = smooth_field(lr.shape[1], lr.shape[2], 3, generator)
            threshold = torch.quantile(field.flatten(), 1 - cover)
            opacity = ((field - threshold) / 0.1).clamp(0, 1)  # soft edges
            brightness = _uniform(generator, 0.3, 0.6)
            lr = lr * (1 - opacity) + brightness * opacity
            clear = opacity < 0.1
        return lr.clamp_min(0), clear


class RevisitPairs(Dataset[tuple[Tensor, Tensor, Tensor, Tensor]]):
    """Training samples ``(lr, hr, dt_days, clear)``: an HR crop and ONE simulated revisit of it.

    ``dt_days`` (target date minus revisit date, signed) is uniform in [-max_dt_days, max_dt_days];
    the HR is the target. The crop carries a margin of ``scale`` LR pixels (so blur and shifts see
    real neighbours), cut off after simulation. Sample ``i`` is the same in every epoch and worker.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        scale: int = 4,
        lr_patch: int = 32,
        length: int = 4096,
        max_dt_days: float = 180.0,
        simulator: RevisitSimulator | None = None,
        seed: int = 0,
        augment: bool = True,  # random flips and 90-degree rotations of the HR crop
    ) -> None:
        self.crops = WaldPatches(scenes, scale, lr_patch, length, augment=augment, seed=seed)
        self.max_dt_days, self.seed = max_dt_days, seed
        self.simulator = simulator or RevisitSimulator(scale=scale)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        crop = self.crops.hr_crop(index)
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence((self.seed, index)).generate_state(1)[0])
        )
        dt = _uniform(generator, -self.max_dt_days, self.max_dt_days)
        lr, clear = self.simulator.simulate(crop, dt, generator)
        m, s = self.crops.margin, self.simulator.scale
        hr = crop[:, m:-m, m:-m].contiguous()
        return (
            lr[:, m // s : -(m // s), m // s : -(m // s)].contiguous(),
            hr,
            torch.tensor(dt),
            clear[m // s : -(m // s), m // s : -(m // s)].contiguous(),
        )
