"""The guided 20 m -> 10 m network and the high-pass-injection baseline it is measured against."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from satsr.data.degradation import wald_degrade
from satsr.evaluation.sharpening import band_scores
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.models.guided import GuidedSR, bicubic_up, high_pass_injection, octave_fitted


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


def mixtures() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(guide at 20 m, bands at 40 m, truth at 20 m) where every 20 m band is a mixture of the 10 m bands."""
    fine = textured(4, 64)
    mixing = torch.tensor([[0.2, 0.1, 0.5, 0.2], [0.0, 0.3, 0.3, 0.4], [0.6, 0.2, 0.1, 0.1],
                           [0.1, 0.1, 0.1, 0.7], [0.3, 0.3, 0.3, 0.1], [0.5, 0.5, 0.0, 0.0]])  # fmt: skip
    truth = wald_degrade(torch.einsum("cg,bghw->bchw", mixing, fine), 2, S2_20M)
    return wald_degrade(fine, 2, S2_RGBN), wald_degrade(truth, 2, S2_20M), truth


def test_the_octave_fit_turns_down_a_network_whose_detail_the_place_does_not_bear_out() -> None:
    """A network that adds wrong detail (a random tail) is far from the truth; fitted one octave down its
    detail is weighed down to almost nothing and injection's up: a hundred times closer than the network
    alone, near injection (the ridge toward the network keeps a trace of it)."""
    guide, coarse, truth = mixtures()
    model = GuidedSR(channels=8, num_blocks=1)
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    with torch.no_grad():
        fitted, alone = octave_fitted(model, guide, coarse), model(guide, coarse)
    injected = high_pass_injection(guide, coarse, S2_RGBN, S2_20M)
    rmse = {name: float(band_scores(x, truth, 2)["rmse"].mean()) for name, x in
            (("fitted", fitted), ("alone", alone), ("injected", injected))}  # fmt: skip
    assert rmse["fitted"] < 0.05 * rmse["alone"] and rmse["fitted"] < 3 * rmse["injected"]


def test_the_octave_fit_of_an_untrained_network_is_bicubic_plus_fitted_injection_and_crops_odd_sides() -> (
    None
):
    guide, coarse, _ = mixtures()
    model = GuidedSR(channels=8, num_blocks=1)  # its detail is zero: only injection's can be weighed
    fitted = octave_fitted(model, guide[..., :30, :26], coarse[..., :15, :13])
    assert fitted.shape == (1, 6, 30, 26)
    base = bicubic_up(coarse, 2)
    detail = high_pass_injection(guide, coarse, S2_RGBN, S2_20M) - base
    ratio = (octave_fitted(model, guide, coarse) - base).flatten(2).norm(dim=-1) / detail.flatten(2).norm(
        dim=-1
    )
    assert torch.all((ratio > 0.5) & (ratio < 1.5))  # injection's detail, scaled per band by its fit
