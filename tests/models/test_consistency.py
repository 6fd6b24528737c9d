import pytest
import torch

from satsr.data.degradation import wald_degrade
from satsr.io.bands import S2_RGBN
from satsr.models.consistency import project_to_lr, sensor_degradation


def _scene() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 4, 12, 12, generator=g), size=64, mode="bicubic")
    return 0.1 + 0.2 * smooth + 0.02 * torch.rand(1, 4, 64, 64, generator=g)


@pytest.mark.parametrize("bands", [S2_RGBN, None])
def test_back_projection_makes_the_sr_consistent_with_the_lr(bands: tuple[str, ...] | None) -> None:
    hr = _scene()
    degrade = sensor_degradation(4, bands)
    lr = degrade(hr)
    # A wrong SR: colours shifted and detail missing.
    sr = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest") * 1.1 + 0.01
    before = (degrade(sr) - lr).abs().mean()
    fixed = project_to_lr(sr, lr, degrade)
    after = (degrade(fixed) - lr).abs().mean()
    assert after < 0.05 * before
    # It also brings the SR closer to the truth, not just to the LR.
    assert (fixed - hr).abs().mean() < (sr - hr).abs().mean()


def test_consistent_sr_is_left_unchanged() -> None:
    hr = _scene()
    degrade = sensor_degradation(4, S2_RGBN)
    lr = wald_degrade(hr, 4, S2_RGBN)
    torch.testing.assert_close(project_to_lr(hr, lr, degrade), hr)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in batch or bands"):
        project_to_lr(torch.zeros(1, 4, 32, 32), torch.zeros(1, 3, 8, 8), sensor_degradation(4, None))
