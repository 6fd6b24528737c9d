import pytest
import torch

from satsr.data.degradation import wald_degrade
from satsr.data.registration import translate
from satsr.io.bands import S2_RGBN
from satsr.models.consistency import project_to_lr, project_to_revisits, sensor_degradation


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


def _revisits(hr: torch.Tensor, shifts: list[tuple[float, float]]) -> torch.Tensor:
    """LR images of ``hr`` on grids moved by ``-shift`` LR pixels: ``shift`` moves each onto the first's."""
    degrade = sensor_degradation(4, S2_RGBN)
    return torch.cat([degrade(translate(hr, (-4 * dy, -4 * dx))) for dy, dx in shifts])


def test_translate_moves_content_as_scipy_shift_does() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 5, 7] = 1.0
    moved = translate(x, (2.0, -3.0))
    assert torch.argmax(moved).item() == 7 * 16 + 4  # out[y, x] = in[y - dy, x - dx]
    torch.testing.assert_close(translate(x, (0.0, 0.0)), x)


def test_multi_frame_back_projection_recovers_detail_one_lr_image_cannot() -> None:
    """Four LR images on grids half a pixel apart hold what one grid aliases away: projected onto all of
    them (with the right shifts) the SR is closer to the truth than projected onto the first alone, and
    with the shifts' signs flipped it is not."""
    g = torch.Generator().manual_seed(1)
    # detail up to the LR grid's Nyquist frequency, which the 4x decimation aliases
    hr = 0.1 + 0.2 * torch.nn.functional.interpolate(
        torch.rand(1, 4, 16, 16, generator=g), size=64, mode="bicubic"
    )
    degrade = sensor_degradation(4, S2_RGBN)
    shifts = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]
    lrs = _revisits(hr, shifts)
    start = project_to_lr(
        torch.nn.functional.interpolate(lrs[:1], scale_factor=4, mode="bicubic"), lrs[:1], degrade
    )
    weights = torch.ones(4, 16, 16)
    right = project_to_revisits(start, lrs, shifts, weights, degrade, iterations=10)
    wrong = project_to_revisits(
        start, lrs, [(-dy, -dx) for dy, dx in shifts], weights, degrade, iterations=10
    )
    error = lambda sr: (sr - hr)[..., 8:-8, 8:-8].abs().mean()  # noqa: E731
    # measured: 0.0096 -> 0.0043 with the right shifts, 0.0309 with the wrong ones
    assert error(right) < 0.6 * error(start)
    assert error(wrong) > error(start)
    # every revisit sees the result as it saw the scene, away from the edges
    seen = _revisits(right, shifts)
    assert (seen - lrs)[..., 2:-2, 2:-2].abs().mean() < 0.5 * (_revisits(start, shifts) - lrs)[
        ..., 2:-2, 2:-2
    ].abs().mean()


def test_revisits_that_weigh_nothing_change_nothing() -> None:
    hr = _scene()
    degrade = sensor_degradation(4, S2_RGBN)
    lrs = _revisits(hr, [(0.0, 0.0), (0.3, -0.2)])
    lrs[1] += 0.05  # a different date: brighter
    sr = torch.nn.functional.interpolate(lrs[:1], scale_factor=4, mode="bicubic")
    weights = torch.stack([torch.ones(16, 16), torch.zeros(16, 16)])
    alone = project_to_revisits(sr, lrs, [(0.0, 0.0), (0.3, -0.2)], weights, degrade)
    torch.testing.assert_close(alone, project_to_lr(sr, lrs[:1], degrade))


def test_multi_frame_back_projection_refuses_mismatched_inputs() -> None:
    degrade = sensor_degradation(4, None)
    with pytest.raises(ValueError, match="N shifts"):
        project_to_revisits(
            torch.zeros(1, 3, 32, 32), torch.zeros(2, 3, 8, 8), [(0.0, 0.0)], torch.ones(2, 8, 8), degrade
        )
    with pytest.raises(ValueError, match="expected weights"):
        project_to_revisits(
            torch.zeros(1, 3, 32, 32), torch.zeros(2, 3, 8, 8), [(0.0, 0.0)] * 2, torch.ones(2, 4, 4), degrade
        )


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize(
    "shift", [(0.3, -0.2), (2.0, -3.0), (-1.7, 4.25), (0.0, 0.5), (-0.999, 1e-3), (40.5, -2.2)]
)
def test_translate_gives_grid_samples_values_border_included(mode: str, shift: tuple[float, float]) -> None:
    x = torch.rand(2, 3, 20, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    height, width = x.shape[-2:]  # the same move by grid_sample, border padding
    ys = (2 * (torch.arange(height, dtype=x.dtype) - shift[0]) + 1) / height - 1
    xs = (2 * (torch.arange(width, dtype=x.dtype) - shift[1]) + 1) / width - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None].expand(len(x), -1, -1, -1)
    expected = torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    torch.testing.assert_close(translate(x, shift, mode), expected)


def test_translate_refuses_an_interpolation_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="bicubic or bilinear"):
        translate(torch.zeros(1, 1, 4, 4), (0.5, 0.0), mode="nearest")
