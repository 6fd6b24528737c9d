"""The guided 20 m -> 10 m network and the high-pass-injection baseline it is measured against."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satsr.data.degradation import wald_degrade
from satsr.evaluation.sharpening import band_scores
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.models.guided import GuidedSR, bicubic_up, high_pass_injection


def textured(bands: int, side: int, seed: int = 0) -> torch.Tensor:
    """(1, bands, side, side) reflectance with detail at every scale (smoothed noise of several widths)."""
    g = torch.Generator().manual_seed(seed)
    x = sum(F.interpolate(torch.rand(1, bands, side // k, side // k, generator=g), size=(side, side),
                          mode="bilinear", align_corners=False) for k in (1, 2, 4, 8))  # fmt: skip
    return 0.05 + 0.05 * x


def test_an_untrained_network_is_bicubic_upsampling_of_the_coarse_bands() -> None:
    guide, coarse = textured(4, 32), textured(6, 16, seed=1)
    torch.testing.assert_close(GuidedSR(channels=8, num_blocks=1)(guide, coarse), bicubic_up(coarse, 2))


def test_a_trained_body_uses_the_guide() -> None:
    model = GuidedSR(channels=8, num_blocks=1)
    torch.nn.init.normal_(model.tail.weight, std=0.1)
    guide, coarse = textured(4, 32), textured(6, 16, seed=1)
    assert not torch.allclose(model(guide, coarse), model(guide.flip(-1), coarse))


def test_bands_and_grids_that_do_not_fit_are_refused() -> None:
    model = GuidedSR(channels=8, num_blocks=1)
    with pytest.raises(ValueError, match="expected 4 guide bands"):
        model(textured(3, 32), textured(6, 16))
    with pytest.raises(ValueError, match="is not 2 x the bands'"):
        model(textured(4, 30), textured(6, 16))


def test_high_pass_injection_recovers_bands_that_are_mixtures_of_the_guide() -> None:
    """When each 20 m band is a linear mixture of the 10 m bands (the same MTF), the detail fitted one
    octave down is the detail of the truth: injection is far closer to the truth than bicubic."""
    fine = textured(4, 64)
    mixing = torch.tensor([[0.2, 0.1, 0.5, 0.2], [0.0, 0.3, 0.3, 0.4], [0.6, 0.2, 0.1, 0.1],
                           [0.1, 0.1, 0.1, 0.7], [0.3, 0.3, 0.3, 0.1], [0.5, 0.5, 0.0, 0.0]])  # fmt: skip
    truth = wald_degrade(torch.einsum("cg,bghw->bchw", mixing, fine), 2, S2_20M)  # real 20 m bands
    guide = wald_degrade(fine, 2, S2_RGBN)
    coarse = wald_degrade(truth, 2, S2_20M)
    injected = high_pass_injection(guide, coarse, S2_RGBN, S2_20M)
    scores = band_scores(injected, truth, 2)
    bicubic = band_scores(bicubic_up(coarse, 2), truth, 2)
    assert scores["psnr"].shape == (1, 6) and scores["sam"].shape == (1,)
    assert (scores["rmse"] < 0.5 * bicubic["rmse"]).all()
    assert float(scores["ergas"][0]) < 0.5 * float(bicubic["ergas"][0])


def test_an_untrained_injection_network_is_high_pass_injection() -> None:
    guide, coarse = textured(4, 64), textured(6, 32, seed=1)
    model = GuidedSR(channels=8, num_blocks=1, base="injection")
    torch.testing.assert_close(model(guide, coarse), high_pass_injection(guide, coarse, S2_RGBN, S2_20M))
    with pytest.raises(ValueError, match="base must be one of bicubic, injection"):
        GuidedSR(base="nearest")
