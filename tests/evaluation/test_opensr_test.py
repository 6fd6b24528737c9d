"""Behaviour of the opensr-test measures on synthetic natural-like scenes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from satsr.evaluation.opensr_test import (
    CORRECTNESS_CLASSES,
    consistency,
    correctness,
    correctness_scores,
    opensr_test_metrics,
    prepare,
    synthesis,
)

SCALE, BATCH, BANDS, HR_SIZE = 4, 2, 4, 128


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@pytest.fixture
def triplet(make_scene: Callable[..., torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lr, lr_up, hr): the LR is the HR degraded exactly as opensr-test's ``sr_down``."""
    hr = make_scene(BATCH, BANDS, HR_SIZE)
    lr = _resize(hr, HR_SIZE // SCALE)
    return lr, _resize(lr, HR_SIZE), hr


def test_sr_consistent_by_construction_scores_zero(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, _, hr = triplet
    result = consistency(lr, hr, SCALE)  # HR itself degrades to exactly this LR
    assert result["reflectance"] < 1e-6
    assert result["spectral"] < 1e-3
    assert result["spatial"] == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolated_sr_is_nearly_consistent(triplet: tuple[torch.Tensor, ...], mode: str) -> None:
    lr, _, _ = triplet
    upsampled = F.interpolate(lr, scale_factor=SCALE, mode=mode, align_corners=False)
    result = consistency(lr, upsampled, SCALE)
    biased = consistency(lr, upsampled + 0.05, SCALE)
    assert result["reflectance"] < 0.01  # reflectance ~0.2: a few percent of blur, no bias
    assert result["reflectance"] < 0.2 * biased["reflectance"]
    assert result["spatial"] < 0.1


def test_shifted_sr_has_spatial_error_of_the_shift(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, _, _ = triplet
    shift_lr_px = 2
    shifted = torch.roll(lr, shifts=(shift_lr_px, 0), dims=(-2, -1))
    sr = F.interpolate(shifted, scale_factor=SCALE, mode="bicubic", align_corners=False)
    assert consistency(lr, sr, SCALE)["spatial"] == pytest.approx(shift_lr_px, abs=0.25)


def test_synthesis_measures_added_detail(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, lr_up, hr = triplet
    # nothing added and nothing to harmonise: zero
    assert synthesis(lr, lr_up, lr_up, SCALE) == pytest.approx(0.0, abs=1e-6)  # float32 input
    # with an HR, histogram matching stretches the blurry interpolation's contrast, so it
    # scores above zero (as in opensr-test), yet below an SR with the true detail
    interpolation = synthesis(lr, lr_up, hr, SCALE)
    true_detail = synthesis(lr, hr, hr, SCALE)
    assert true_detail > 1e-3
    assert interpolation < true_detail


def test_correctness_of_the_true_hr_is_improvement(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, _, hr = triplet
    result = correctness(lr, hr, hr, SCALE)
    assert max(result, key=result.__getitem__) == "improvement"
    assert result["hallucination"] < 0.1
    assert sum(result.values()) == pytest.approx(1.0)


def test_correctness_of_plain_interpolation_is_omission(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, lr_up, hr = triplet
    result = correctness(lr, lr_up, hr, SCALE)
    assert max(result, key=result.__getitem__) == "omission"


def test_correctness_of_invented_detail_is_hallucination(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, lr_up, hr = triplet
    invented = lr_up + (hr - lr_up).flip(-1)  # detail of the right strength in the wrong place
    result = correctness(lr, invented, hr, SCALE)
    assert result["hallucination"] > result["improvement"]


def test_percent_norm_counts_winning_pixels(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, _, hr = triplet
    result = correctness(lr, hr, hr, SCALE, norm="percent")
    assert result["improvement"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="norm"):
        correctness(lr, hr, hr, SCALE, norm="argmax")


def test_correctness_scores_at_the_corners_of_the_space() -> None:
    # (d_im, d_om) = (0, 1): SR == HR; (1, 0): SR == lr_up
    scores = correctness_scores(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert scores.shape == (len(CORRECTNESS_CLASSES), 2)
    assert scores[:, 0].argmin().item() == CORRECTNESS_CLASSES.index("improvement")
    assert scores[:, 1].argmin().item() == CORRECTNESS_CLASSES.index("omission")


def test_bundle_has_every_measure(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, lr_up, hr = triplet
    result = opensr_test_metrics(lr, lr_up, hr, SCALE)
    assert set(result) == {"reflectance", "spectral", "spatial", "synthesis", *CORRECTNESS_CLASSES}
    assert result["synthesis"] == pytest.approx(synthesis(lr, lr_up, hr, SCALE))


def test_non_integer_scale_is_supported(make_scene: Callable[..., torch.Tensor]) -> None:
    scale, hr_size = 2.5, 100
    hr = make_scene(1, BANDS, hr_size)
    lr = _resize(hr, round(hr_size / scale))
    prepared = prepare(lr, hr, hr, scale)
    assert prepared.lr_up.shape == prepared.hr.shape == (1, BANDS, hr_size - 32, hr_size - 32)
    assert prepared.lr.shape[-1] == round(hr_size / scale) - 2 * round(16 / scale)
    assert consistency(lr, hr, scale)["reflectance"] < 1e-6


def test_inputs_are_validated(triplet: tuple[torch.Tensor, ...]) -> None:
    lr, lr_up, _ = triplet
    with pytest.raises(ValueError, match="expected lr size"):
        consistency(lr, lr_up, scale=2)
    with pytest.raises(ValueError, match="NaN"):
        consistency(lr, lr_up.clone().fill_(float("nan")), SCALE)
    with pytest.raises(ValueError, match="border"):
        consistency(lr, lr_up, SCALE, border=HR_SIZE // 2)
