"""Synthetic reflectance scenes for the evaluation tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

#: Natural images have an amplitude spectrum close to 1/f (power 1/f^2).
NATURAL_SPECTRAL_SLOPE = 1.0
#: Mean and spread of the synthetic reflectance.
REFLECTANCE_MEAN, REFLECTANCE_SPREAD = 0.2, 0.05
#: Weight of the band-specific texture against the texture shared by all bands.
BAND_TEXTURE_WEIGHT = 0.3
REFLECTANCE_FLOOR = 0.01


def _one_over_f_field(shape: tuple[int, int, int, int], generator: torch.Generator) -> torch.Tensor:
    batch, bands, height, width = shape
    frequency = torch.sqrt(torch.fft.fftfreq(height)[:, None] ** 2 + torch.fft.rfftfreq(width)[None, :] ** 2)
    frequency[0, 0] = 1.0
    spectrum_shape = (batch, bands, height, width // 2 + 1)
    phase = torch.exp(2j * math.pi * torch.rand(spectrum_shape, generator=generator))
    spectrum = torch.randn(spectrum_shape, generator=generator) * phase / frequency**NATURAL_SPECTRAL_SLOPE
    return torch.fft.irfft2(spectrum, s=(height, width))


def natural_scene(batch: int, bands: int, size: int, seed: int = 0) -> torch.Tensor:
    """A (B, C, size, size) reflectance scene with a natural-image (1/f) spectrum and correlated bands."""
    generator = torch.Generator().manual_seed(seed)
    shared = _one_over_f_field((batch, 1, size, size), generator)
    own = _one_over_f_field((batch, bands, size, size), generator)
    field = shared + BAND_TEXTURE_WEIGHT * own
    field = (field - field.mean()) / field.std()
    return (REFLECTANCE_MEAN + REFLECTANCE_SPREAD * field).clamp(min=REFLECTANCE_FLOOR)


@pytest.fixture
def make_scene() -> Callable[..., torch.Tensor]:
    """The :func:`natural_scene` factory: ``make_scene(batch, bands, size, seed=0)``."""
    return natural_scene
