import pytest
import torch

from satsr.models.fast import ResidualSR
from satsr.nn.blocks import BicubicPhases


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("progressive", [False, True])
def test_output_shape(scale: int, progressive: bool) -> None:
    if progressive and scale == 3:
        model = ResidualSR(in_channels=4, scale=3, channels=8, num_blocks=1, progressive_upsampling=True)
    else:
        model = ResidualSR(
            in_channels=4, scale=scale, channels=8, num_blocks=1, progressive_upsampling=progressive
        )
    out = model(torch.rand(2, 4, 7, 11))
    assert out.shape == (2, 4, 7 * scale, 11 * scale)


def test_zero_residual_is_bicubic_in_reflectance_units() -> None:
    """With the last layer zeroed the network is exactly bicubic upsampling, whatever the normalisation."""
    model = ResidualSR(channels=8, num_blocks=1, band_mean=[0.1] * 4, band_std=[0.05] * 4)
    last = model.upsample[0]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    lr = torch.rand(1, 4, 9, 9)
    expected = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(model(lr), expected, rtol=1e-5, atol=1e-6)


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = ResidualSR(channels=8, num_blocks=2).eval()
    lr = torch.rand(1, 4, 16, 16)
    ref = model(lr)
    fast = model.to(memory_format=torch.channels_last)(lr.to(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_bad_normalisation_length_is_rejected() -> None:
    with pytest.raises(ValueError, match="one value per input channel"):
        ResidualSR(in_channels=4, band_mean=[0.0, 0.0])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_phases_shuffle_into_torch_bicubic(scale: int) -> None:
    x = torch.rand(2, 3, 7, 10, generator=torch.Generator().manual_seed(0))
    phases = BicubicPhases(3, scale)(x)
    assert phases.shape == (2, 3 * scale**2, 7, 10)
    expected = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    torch.testing.assert_close(
        torch.nn.functional.pixel_shuffle(phases, scale), expected, rtol=1e-5, atol=1e-6
    )
