"""Behaviour of the pixel metrics: known values on constructed images, masks, failure modes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from satsr.evaluation.metrics import ergas, lr_grid_pattern, mse, psnr, sam, ssim

BATCH, BANDS, SIZE = 2, 4, 32


@pytest.fixture
def hr() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 0.05 + 0.4 * torch.rand(BATCH, BANDS, SIZE, SIZE, generator=generator)


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=generator)


def test_metrics_return_one_float64_value_per_image(hr: torch.Tensor) -> None:
    sr = _noisy(hr, 0.01)
    for value in (psnr(sr, hr), ssim(sr, hr), sam(sr, hr), ergas(sr, hr, scale=4), mse(sr, hr)):
        assert value.shape == (BATCH,)
        assert value.dtype == torch.float64


def test_psnr_identical_images_is_infinite(hr: torch.Tensor) -> None:
    assert torch.isinf(psnr(hr, hr)).all()


def test_psnr_known_value_constant_error() -> None:
    hr = torch.zeros(1, 3, 8, 8)
    sr = torch.full_like(hr, 0.1)  # MSE = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert psnr(sr, hr).item() == pytest.approx(20.0)
    # doubling the data range adds 20 log10(2) dB
    assert psnr(sr, hr, data_range=2.0).item() == pytest.approx(20.0 + 20 * math.log10(2))


def test_psnr_mask_excludes_invalid_pixels_even_nan() -> None:
    hr = torch.zeros(1, 2, 8, 8)
    sr = torch.full_like(hr, 0.1)
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :4, :] = False
    sr[..., :4, :] = float("nan")  # nodata in the invalid half must not leak
    assert psnr(sr, hr, mask=mask).item() == pytest.approx(20.0)


def test_per_band_mask_is_accepted(hr: torch.Tensor) -> None:
    sr = hr.clone()
    sr[:, 0] += 0.5  # only band 0 is wrong ...
    mask = torch.ones_like(hr, dtype=torch.bool)
    mask[:, 0] = False  # ... and it is masked out
    assert torch.isinf(psnr(sr, hr, mask=mask)).all()


def test_all_invalid_pixels_give_nan_not_zero(hr: torch.Tensor) -> None:
    mask = torch.zeros(BATCH, 1, SIZE, SIZE, dtype=torch.bool)
    assert torch.isnan(psnr(hr, hr, mask=mask)).all()
    assert torch.isnan(sam(hr, hr, mask=mask)).all()


def test_mask_must_be_boolean_and_fit(hr: torch.Tensor) -> None:
    with pytest.raises(TypeError, match="boolean"):
        psnr(hr, hr, mask=torch.ones(BATCH, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="mask"):
        psnr(hr, hr, mask=torch.ones(BATCH, 1, SIZE, SIZE - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="channels"):
        psnr(hr, hr, mask=torch.ones(BATCH, 2, SIZE, SIZE, dtype=torch.bool))


def test_shape_mismatch_is_an_error(hr: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(hr[:, :3], hr)
    with pytest.raises(ValueError, match="B, C, H, W"):
        ssim(hr[0], hr[0])


def test_ssim_identical_is_one(hr: torch.Tensor) -> None:
    torch.testing.assert_close(ssim(hr, hr), torch.ones(BATCH, dtype=torch.float64))


def test_ssim_decreases_with_noise(hr: torch.Tensor) -> None:
    values = [ssim(_noisy(hr, sigma), hr).mean().item() for sigma in (0.01, 0.05, 0.2)]
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_is_symmetric(hr: torch.Tensor) -> None:
    sr = _noisy(hr, 0.05)
    torch.testing.assert_close(ssim(sr, hr), ssim(hr, sr))


def test_ssim_known_value_for_constant_images() -> None:
    # constant images: no variance, so SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.5, 0.25
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)
    value = ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert value.item() == pytest.approx(expected)


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 1, 10, 10), torch.zeros(1, 1, 10, 10))


def test_sam_of_scaled_spectra_is_zero(hr: torch.Tensor) -> None:
    assert sam(3.0 * hr, hr).abs().max().item() < 1e-5


def test_sam_of_orthogonal_spectra_is_ninety_degrees() -> None:
    sr = torch.zeros(1, 2, 4, 4)
    hr = torch.zeros(1, 2, 4, 4)
    sr[:, 0] = 0.3
    hr[:, 1] = 0.7
    assert sam(sr, hr).item() == pytest.approx(90.0)


def test_sam_known_angle_and_mask() -> None:
    hr = torch.zeros(1, 2, 4, 4)
    hr[:, 0] = 1.0
    sr = hr.clone()
    sr[:, 1] = 1.0  # (1, 1) against (1, 0): 45 degrees everywhere
    assert sam(sr, hr).item() == pytest.approx(45.0)
    sr[..., 0, :] = torch.tensor([0.0, 1.0]).view(1, 2, 1)  # top row orthogonal (90 degrees)
    assert sam(sr, hr).item() == pytest.approx((3 * 45.0 + 90.0) / 4)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 0, :] = False
    assert sam(sr, hr, mask=mask).item() == pytest.approx(45.0)


def test_sam_skips_pixels_without_a_spectrum() -> None:
    hr = torch.ones(1, 3, 4, 4)
    sr = 2 * hr
    sr[..., 0, 0] = 0.0  # zero vector: angle undefined, pixel left out
    assert sam(sr, hr).item() == pytest.approx(0.0, abs=1e-5)


def test_ergas_known_value() -> None:
    band_means = torch.tensor([0.2, 0.4]).view(1, 2, 1, 1)
    hr = band_means.expand(1, 2, 8, 8).clone()
    sr = hr * 1.1  # RMSE_c / mean_c = 0.1 in every band
    # 100 / scale * sqrt(mean(0.1^2)) = 100 / 4 * 0.1
    assert ergas(sr, hr, scale=4).item() == pytest.approx(2.5)
    assert ergas(hr, hr, scale=4).item() == 0.0


def test_ergas_mask_and_scale_validation() -> None:
    hr = torch.full((1, 2, 8, 8), 0.2)
    sr = hr * 1.1
    sr[..., :2, :] = 5.0
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :2, :] = False
    assert ergas(sr, hr, scale=2, mask=mask).item() == pytest.approx(100 / 2 * 0.1)
    with pytest.raises(ValueError, match="scale"):
        ergas(sr, hr, scale=0)


def smooth_picture(side: int, period: float) -> torch.Tensor:
    """A smooth picture drawn on its own grid: no LR grid anywhere in it."""
    yy, xx = torch.meshgrid(torch.arange(side) / period, torch.arange(side) / period, indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(xx + c) * torch.cos(0.8 * yy) for c in range(3)])[None]


@pytest.mark.parametrize("scale", [2.0, 2.6, 4.0, 6.0])
def test_lr_grid_pattern_is_low_for_detail_at_any_phase_and_high_for_detail_in_lr_cells(scale: float) -> None:
    torch.manual_seed(0)
    side = round(30 * scale)
    smooth = smooth_picture(side, period=4 * scale)
    noise = torch.rand(1, 3, side, side)  # edges at every phase
    cells = F.interpolate(torch.rand(1, 3, 30, 30), size=(side, side), mode="nearest")  # edges on the grid
    # the same smooth picture with a dark ring drawn in every LR pixel
    phase = (torch.arange(side) + 0.5) * 30 / side % 1 - 0.5
    rim = ((phase[:, None] ** 2 + phase[None, :] ** 2).sqrt() - 0.35).abs() < 0.1
    blobs = smooth - 0.2 * rim
    low = [float(lr_grid_pattern(x, (30, 30))[0]) for x in (smooth, noise)]
    patterned = [cells, torch.roll(cells, 1, -1)] + [blobs] * (scale >= 4)  # a rim needs pixels to draw
    high = [float(lr_grid_pattern(x, (30, 30))[0]) for x in patterned]
    assert max(low) < 0.06
    assert min(high) > 0.5


def test_lr_grid_pattern_needs_an_output_finer_than_its_lr() -> None:
    with pytest.raises(ValueError, match="not finer"):
        lr_grid_pattern(torch.rand(1, 3, 30, 30), (30, 30))
