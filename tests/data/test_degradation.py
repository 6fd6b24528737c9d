import math

import pytest
import torch

from satsr.data.degradation import bicubic_degrade, gaussian_blur, mtf_gaussian_sigma, wald_degrade
from satsr.io.bands import S2_BANDS, S2_RGBN


def test_mtf_sigma_gives_the_requested_response_at_nyquist() -> None:
    scale, mtf = 4, 0.28
    sigma = mtf_gaussian_sigma(mtf, scale)
    f_nyquist = 1 / (2 * scale)
    assert math.exp(-2 * math.pi**2 * sigma**2 * f_nyquist**2) == pytest.approx(mtf)


def test_blur_preserves_constant_image_and_mean() -> None:
    x = torch.full((1, 2, 32, 32), 0.25)
    torch.testing.assert_close(gaussian_blur(x, [1.0, 2.0]), x)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_wald_degrade_shape_and_flat_field(scale: int) -> None:
    hr = torch.full((2, 4, 12 * scale, 8 * scale), 0.1)
    lr = wald_degrade(hr, scale, S2_RGBN)
    assert lr.shape == (2, 4, 12, 8)
    torch.testing.assert_close(lr, torch.full_like(lr, 0.1))


def test_wald_degrade_removes_high_frequencies() -> None:
    hr = torch.rand(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    lr = wald_degrade(hr, 4, S2_RGBN)
    naive = hr[..., 2::4, 2::4]
    assert lr.std() < 0.5 * naive.std()


def test_wald_degrade_rejects_non_multiple_sizes() -> None:
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        wald_degrade(torch.zeros(1, 4, 30, 32), 4, S2_RGBN)


def test_bicubic_degrade_rounds_size_for_real_scales() -> None:
    assert bicubic_degrade(torch.rand(1, 3, 100, 70), 2.6).shape == (1, 3, 38, 27)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_wald_degrade_is_the_blur_sampled_at_the_block_centres(scale: int) -> None:
    """The strided implementation equals blurring the whole image and then decimating it."""
    hr = torch.rand(2, 4, 12 * scale, 10 * scale, generator=torch.Generator().manual_seed(scale))
    blurred = gaussian_blur(hr, [mtf_gaussian_sigma(S2_BANDS[b].mtf_nyquist, scale) for b in S2_RGBN])
    half = scale // 2
    if scale % 2:
        expected = blurred[..., half::scale, half::scale]
    else:
        pick = [(half - 1, half - 1), (half, half), (half - 1, half), (half, half - 1)]
        expected = sum(blurred[..., a::scale, b::scale] for a, b in pick) / 4
    torch.testing.assert_close(wald_degrade(hr, scale, S2_RGBN), expected, rtol=1e-5, atol=1e-6)
