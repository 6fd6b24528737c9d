"""Histogram matching and phase-correlation registration."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import ndimage

from satsr.evaluation.alignment import (
    apply_shift,
    harmonize,
    histogram_match,
    phase_correlation_shift,
    registration_layer,
)
from satsr.evaluation.quicklook import RGBN_RGB_CHANNELS

SIZE = 64


@pytest.fixture
def scene(make_scene: Callable[..., torch.Tensor]) -> np.ndarray:
    return make_scene(1, 4, SIZE)[0].double().numpy()


def _fourier_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Exact periodic sub-pixel translation: result(x) = image(x - shift)."""
    return np.real(np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(image), shift)))


def test_histogram_match_takes_the_reference_distribution(scene: np.ndarray) -> None:
    source = 0.5 * scene + 0.1  # a monotone change of every band
    matched = histogram_match(source, scene)
    np.testing.assert_allclose(np.sort(matched.reshape(4, -1)), np.sort(scene.reshape(4, -1)), atol=1e-12)
    # the spatial pattern of the source is kept: a linear change is undone exactly
    np.testing.assert_allclose(matched, scene, atol=1e-12)


def test_histogram_match_validates_bands(scene: np.ndarray) -> None:
    with pytest.raises(ValueError, match="band counts"):
        histogram_match(scene[:3], scene)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (2.0, -3.0), (1.36, -0.5)])
def test_phase_correlation_recovers_subpixel_shifts(scene: np.ndarray, shift: tuple[float, float]) -> None:
    reference = scene.mean(axis=0)
    moving = _fourier_shift(reference, shift)
    estimate = phase_correlation_shift(reference, moving)
    # the registering shift is the opposite of the applied one
    np.testing.assert_allclose(estimate, -np.array(shift), atol=0.05)


def test_registration_layer_is_the_mean_of_all_bands_unless_bands_are_named(scene: np.ndarray) -> None:
    # opensr-test registers on satalign's default layer, the mean of every band (NIR included).
    np.testing.assert_allclose(registration_layer(scene), scene.mean(axis=0))
    np.testing.assert_allclose(registration_layer(scene, RGBN_RGB_CHANNELS), scene[:3].mean(axis=0))
    np.testing.assert_allclose(registration_layer(scene[:2], RGBN_RGB_CHANNELS), scene[:2].mean(axis=0))


def test_harmonize_undoes_bias_and_shift(scene: np.ndarray) -> None:
    interior = slice(8, -8)  # edges are replicated after shifting, compare inside
    sr = 1.2 * np.stack([_fourier_shift(band, (1.0, -2.0)) for band in scene]) + 0.03
    harmonized = harmonize(sr, scene, RGBN_RGB_CHANNELS)
    error_before = np.abs(sr - scene)[:, interior, interior].mean()
    error_after = np.abs(harmonized - scene)[:, interior, interior].mean()
    assert error_after < 0.1 * error_before


def test_harmonize_ignores_implausible_shifts(scene: np.ndarray) -> None:
    sr = np.stack([_fourier_shift(band, (9.0, 0.0)) for band in scene])
    np.testing.assert_allclose(
        harmonize(sr, scene, RGBN_RGB_CHANNELS, max_shift=5.0), histogram_match(sr, scene)
    )


def test_apply_shift_zero_is_identity(scene: np.ndarray) -> None:
    np.testing.assert_array_equal(apply_shift(scene, np.zeros(2)), scene)
