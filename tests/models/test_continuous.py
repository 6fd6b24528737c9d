"""ContinuousSR (E2DiffSR and its regression baseline) on tiny models and generated tensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tests.conftest import TINY_CONTINUOUS as TINY
from tests.conftest import tiny_continuous as tiny

from satsr.diffusion.unrolled import eps_from_x0, linear_betas, q_sample, reverse_step, unrolled_reverse
from satsr.models import implicit
from satsr.models.continuous import ContinuousSR
from satsr.models.continuous_parts import ScaleCoefficients
from satsr.models.implicit import ContinuousUpsampler, output_size, regular_grid

SCALES = [1.0, 2.6, 3.4, 8.0]


def picture(height: int = 16, width: int = 20, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    smooth = torch.stack([0.5 + 0.3 * torch.sin(xx / 3 + c) * torch.cos(yy / 4) for c in range(3)])
    return (smooth + 0.05 * torch.rand(3, height, width))[None]


@pytest.mark.parametrize("prior", [True, False])
@pytest.mark.parametrize("scale", SCALES)
def test_output_has_exactly_round_h_s_by_round_w_s_pixels(prior: bool, scale: float) -> None:
    model = tiny(prior)
    lr = picture(7, 11).repeat(2, 1, 1, 1)
    with torch.no_grad():
        out = model(lr, scale)
    assert out.shape == (2, 3, round(7 * scale), round(11 * scale))
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("scale", SCALES)
def test_query_coordinates_give_the_regular_grid_and_any_part_of_it(scale: float) -> None:
    model = tiny(prior=True)
    lr = picture()
    size = output_size((16, 20), scale)
    with torch.no_grad():
        z = model.sample_prior(lr, scale, seeds=[3])
        full = model.render(lr, scale, regular_grid((16, 20), size)[None], z)
        part = model.render(lr, scale, regular_grid((16, 20), size)[None, 2:9, 5:13], z)
        forward = model(lr, scale, seeds=[3])
    torch.testing.assert_close(forward, full.clamp(0, 1))
    torch.testing.assert_close(part, full[..., 2:9, 5:13])


@pytest.mark.parametrize("scale", [2.0, 2.6, 4.0])
def test_lr_consistency_back_projects_the_regular_grid_and_any_part_of_it(scale: float) -> None:
    model, lr = tiny(prior=True), picture()
    size = output_size((16, 20), scale)

    def degrade(sr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(sr, size=(16, 20), mode="bicubic", antialias=True, align_corners=False)

    with torch.no_grad():
        free = model(lr, scale, seeds=[3])
        model.lr_consistency = True
        projected = model(lr, scale, seeds=[3])
        part = model(lr, scale, seeds=[3], coords=regular_grid((16, 20), size)[None, 2:9, 5:13])
    before, after = ((degrade(y) - lr).abs().mean() for y in (free, projected))
    assert after < 0.5 * before  # three rounds of back-projection onto the LR
    torch.testing.assert_close(part, projected[..., 2:9, 5:13])  # asked for a part: corrected alike


@pytest.mark.parametrize("scale", [1.0, 2.6, 4.0])
def test_an_untrained_model_is_bicubic_interpolation_in_input_units(scale: float) -> None:
    torch.manual_seed(0)
    model = ContinuousSR(
        **{**TINY, "prior": False, "band_mean": [0.4, 0.5, 0.6], "band_std": [0.2, 0.1, 0.3]}
    )
    lr = picture()
    with torch.no_grad():
        out = model.render(lr, scale, regular_grid((16, 20), output_size((16, 20), scale))[None])
    expected = F.interpolate(lr, size=output_size((16, 20), scale), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_overlapping_crops_agree_away_from_their_borders() -> None:
    """The baseline is translation-equivariant in LR pixels: two crops of one picture, each queried at
    the scene's output grid shifted to its own coordinates, agree where both see the full receptive
    field (4 * units * blocks_per_unit + 6 = 10 LR pixels here: the IMDB's four 3x3 convs, head, tail,
    pyramid convs, bilinear and bicubic taps), and differ near the crop edges (the margin is needed)."""
    model, scale = tiny(prior=False, num_units=1), 2.6
    lr = picture(24, 64)
    grid = regular_grid((24, 64), output_size((24, 64), scale))[None]
    with torch.no_grad():
        scene = model.render(lr, scale, grid)
        left = model.render(lr[..., :48], scale, grid)
        right = model.render(lr[..., 16:], scale, grid - torch.tensor([0.0, 16.0]))
    cols = grid[0, 0, :, 1]
    inner = (cols > 16 + 11) & (cols < 48 - 11)
    assert inner.sum() >= 20
    torch.testing.assert_close(left[..., inner], scene[..., inner], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(right[..., inner], scene[..., inner], rtol=1e-5, atol=1e-5)
    edge = (cols > 44) & (cols < 48)
    assert not torch.allclose(left[..., edge], scene[..., edge], atol=1e-4)
    assert not torch.allclose(
        right[..., (cols > 16) & (cols < 20)], scene[..., (cols > 16) & (cols < 20)], atol=1e-4
    )


@pytest.mark.parametrize("scale", [1.0, 1.7, 4.0, 8.0, 12.5])
def test_scale_modulation_pairs_are_l2_normalised(scale: float) -> None:
    torch.manual_seed(0)
    coefficients = ScaleCoefficients(units=4)
    alphas = coefficients(scale)
    raw = coefficients.mlp(torch.tensor([[scale]])).view(4, 2)
    assert alphas.shape == (4, 2) and (alphas >= 0).all()
    # |a| / sqrt(a1^2 + a2^2 + eps) (Eq. 4): unit norm up to the eps guard
    expected = raw.norm(dim=1) / torch.sqrt(raw.square().sum(dim=1) + coefficients.eps)
    torch.testing.assert_close(alphas.norm(dim=1), expected)
    torch.testing.assert_close(alphas.norm(dim=1), torch.ones(4), rtol=0, atol=1e-4)
    torch.testing.assert_close(alphas[:, 0] / alphas[:, 1], (raw[:, 0] / raw[:, 1]).abs())


@pytest.mark.parametrize(
    ("scale", "levels"), [(1.0, 1), (1.5, 2), (2.0, 2), (2.6, 3), (4.0, 3), (4.1, 4), (9.0, 4)]
)
def test_level_attention_sums_to_one_over_the_levels_the_scale_needs(scale: float, levels: int) -> None:
    upsampler = ContinuousUpsampler(8, 3, pyramid_channels=4, levels=4)
    with torch.no_grad():
        weights = upsampler.level_weights(scale)
    assert upsampler.used_levels(scale) == levels
    assert float(weights.sum()) == pytest.approx(1.0) and (weights[levels:] == 0).all()
    assert (weights[:levels] > 0).all()


def test_inference_runs_the_pixel_mlp_in_bands_of_rows_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    upsampler = ContinuousUpsampler(8, 3, pyramid_channels=4, hidden=8)
    torch.nn.init.normal_(upsampler.mlp[-1].weight, std=0.3)
    features, coords = torch.randn(2, 8, 6, 7), regular_grid((6, 7), (20, 23))[None]
    calls: list[tuple[int, ...]] = []
    upsampler.mlp.register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    whole = upsampler(features, coords, 3.3)  # with gradients: one pass over all queries
    monkeypatch.setattr(implicit, "INFERENCE_QUERIES", 2 * 23 * 3)  # 3 rows of 2 items per pass
    with torch.no_grad():
        banded = upsampler(features, coords, 3.3)
    assert calls == [(2, 8, 20, 23)] + [(2, 8, 3, 23)] * 6 + [(2, 8, 2, 23)]
    torch.testing.assert_close(banded, whole.detach())


def test_modulation_changes_with_the_scale() -> None:
    coefficients = ScaleCoefficients(units=4)
    assert not torch.allclose(coefficients(2.0), coefficients(6.0))


def test_sampling_is_fixed_by_the_seed_and_per_item() -> None:
    model = tiny(prior=True)
    lr = torch.cat([picture(seed=0), picture(seed=1)])
    with torch.no_grad():
        first = model(lr, 3.4, seeds=[5, 6])
        again = model(lr, 3.4, seeds=[5, 6])
        other = model(lr, 3.4, seeds=[7, 6])
        alone = model(lr[1:], 3.4, seeds=[6])
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(alone[0], first[1])
    assert not torch.allclose(other[0], first[0]) and torch.allclose(other[1], first[1])


def test_the_baseline_ignores_seeds_and_sample_checks_steps() -> None:
    baseline, model = tiny(prior=False), tiny(prior=True)
    lr = picture()
    assert not baseline.stochastic and model.stochastic
    torch.testing.assert_close(baseline(lr, 2.0, seeds=[1]), baseline(lr, 2.0, seeds=[2]))
    assert model.sample(lr, [1], steps=4, scale=2.0).shape == (1, 3, 32, 40)
    with pytest.raises(ValueError, match="exactly 4 steps"):
        model.sample(lr, [1], steps=10, scale=2.0)
    with pytest.raises(ValueError, match="scale must be"):
        baseline(lr, 0.5)
    with pytest.raises(ValueError, match="expected LR"):
        baseline(torch.rand(1, 4, 8, 8), 2.0)


def test_tile_origins_are_mixed_into_the_seeds() -> None:
    model = tiny(prior=True)
    lr = torch.cat([picture(), picture()])
    moved = model.sample(lr, [1, 1], None, [(0, 0), (0, 16)], scale=2.0)
    still = model.sample(lr, [1, 1], None, [(0, 0), (0, 0)], scale=2.0)
    torch.testing.assert_close(moved[0], still[0], rtol=0, atol=0)
    torch.testing.assert_close(still[0], still[1], rtol=0, atol=0)
    assert not torch.allclose(moved[1], still[1])


def test_an_untrained_denoiser_returns_the_condition() -> None:
    """x0 = c + UNet(...) and the last reverse step returns x0: a zero UNet yields z0 = CondNet(LR up)."""
    model = tiny(prior=True)
    assert model.denoiser is not None
    torch.nn.init.zeros_(model.denoiser.conv_out.weight)
    lr = picture(9, 13)  # latent 2 x 2 at x 8 / 8 ... odd sizes at 2.6: padded for the UNet
    with torch.no_grad():
        cond = model.condition(lr, 2.6)
        z0 = model.reverse(cond, torch.randn_like(cond), 2.6)
    assert cond.shape == (1, 4, 3, 5)  # ceil(round(9 * 2.6) / 8) x ceil(round(13 * 2.6) / 8)
    torch.testing.assert_close(z0, cond, rtol=1e-4, atol=1e-4)


def test_json_config_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    config = {**TINY, "prior": True, "band_mean": [0.3, 0.4, 0.5], "band_std": [0.2, 0.2, 0.25]}
    model = tiny(**config)  # type: ignore[arg-type]
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "ContinuousSR", **config}))
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    loaded_config = json.loads((tmp_path / "config.json").read_text())
    loaded_config.pop("architecture")
    rebuilt = ContinuousSR(**loaded_config).eval()
    rebuilt.load_state_dict(load_file(tmp_path / "model.safetensors"))
    lr = picture()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(lr, 3.4, seeds=[2]), model(lr, 3.4, seeds=[2]), rtol=0, atol=0)


def test_the_encoder_latent_is_one_eighth_of_the_hr_size() -> None:
    model = tiny(prior=True)
    lr, hr = picture(8, 10), picture(20, 26)
    posterior = model.encode(lr, hr)
    assert posterior.mean.shape == (1, 4, 3, 4)
    features = model.prior_features(posterior.mode(), (20, 26))
    assert [tuple(h.shape[-2:]) for h in features] == [(3, 4), (5, 7), (10, 13), (20, 26)]


def test_the_chain_is_e2diffsr_s_schedule_and_inverts_an_exact_noise_predictor() -> None:
    betas = linear_betas()
    step = (0.99 - 0.1) / 3  # linear from beta_1 = 0.99 down to beta_T = 0.1 over T = 4 steps
    expected = torch.tensor([0.99, 0.99 - step, 0.99 - 2 * step, 0.1], dtype=torch.float64)
    torch.testing.assert_close(betas, expected)
    torch.manual_seed(0)
    z0, noise = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    z_T = q_sample(z0, 4, noise, betas)
    # A predictor that knows z0 (eps implied by Eq. 8) walks the chain back to z0 exactly.
    recovered = unrolled_reverse(lambda z, t: eps_from_x0(z, z0, t, betas), z_T, betas)
    torch.testing.assert_close(recovered, z0, rtol=1e-4, atol=1e-4)
    z_1 = q_sample(z0, 1, noise, betas)
    torch.testing.assert_close(reverse_step(z_1, eps_from_x0(z_1, z0, 1, betas), 1, betas), z0)


def test_the_prior_detail_path_starts_silent_and_renders_at_output_resolution() -> None:
    """``prior_detail`` adds the prior's output-size level to the pixel MLP through zero-initialised
    weights: trained weights load unchanged; once trained it changes the output, and a part of the
    output grid still equals the same part of the whole (the tiling contract)."""
    plain, lr, scale = tiny(prior=True), picture(), 3.4
    grown = tiny(prior=True, prior_detail=True)
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["upsampler.detail.weight"] and not unexpected
    with torch.no_grad():
        torch.testing.assert_close(grown(lr, scale, seeds=[1]), plain(lr, scale, seeds=[1]), rtol=0, atol=0)
        torch.nn.init.normal_(grown.upsampler.detail.weight, std=0.5)  # type: ignore[union-attr]
        assert not torch.allclose(grown(lr, scale, seeds=[1]), plain(lr, scale, seeds=[1]), atol=1e-3)
        size = output_size((16, 20), scale)
        z = grown.sample_prior(lr, scale, seeds=[1])
        full = grown.render(lr, scale, regular_grid((16, 20), size)[None], z)
        part = grown.render(lr, scale, regular_grid((16, 20), size)[None, 3:11, 4:17], z)
    torch.testing.assert_close(part, full[..., 3:11, 4:17])
    with pytest.raises(ValueError, match="needs the prior"):
        tiny(prior=False, prior_detail=True)


def test_the_detail_input_varies_within_an_lr_pixel_where_the_lr_features_cannot() -> None:
    """The point of the path: a detail map on the output grid reaches the MLP at output resolution, so
    two queries in one LR pixel can differ by it alone (the LR features there are one value)."""
    torch.manual_seed(0)
    upsampler = ContinuousUpsampler(8, 3, pyramid_channels=4, levels=1, hidden=8, detail_channels=2)
    torch.nn.init.normal_(upsampler.mlp[-1].weight, std=0.3)
    torch.nn.init.normal_(upsampler.detail.weight, std=1.0)  # type: ignore[union-attr]
    features = torch.ones(1, 8, 4, 4)  # flat: bilinear samples are the same everywhere
    coords = regular_grid((4, 4), (16, 16))[None]
    detail = torch.zeros(1, 2, 16, 16)
    detail[..., 5, 6] = 3.0  # one output pixel's worth
    with torch.no_grad():
        flat = upsampler(features, coords, 4.0)
        out = upsampler(features, coords, 4.0, detail)
    changed = (out - flat).abs().amax(dim=1)[0] > 1e-4
    assert changed[5, 6] and changed.sum() == 1
    with pytest.raises(ValueError, match="without a detail input"):
        ContinuousUpsampler(8, 3, pyramid_channels=4, levels=1, hidden=8)(features, coords, 4.0, detail)


def test_banded_inference_passes_the_detail_rows_with_their_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    upsampler = ContinuousUpsampler(8, 3, pyramid_channels=4, hidden=8, detail_channels=2)
    torch.nn.init.normal_(upsampler.mlp[-1].weight, std=0.3)
    torch.nn.init.normal_(upsampler.detail.weight, std=1.0)  # type: ignore[union-attr]
    features, coords = torch.randn(2, 8, 6, 7), regular_grid((6, 7), (20, 23))[None]
    detail = torch.randn(2, 2, 20, 23)
    whole = upsampler(features, coords, 3.3, detail)
    monkeypatch.setattr(implicit, "INFERENCE_QUERIES", 2 * 23 * 3)
    with torch.no_grad():
        banded = upsampler(features, coords, 3.3, detail)
    torch.testing.assert_close(banded, whole.detach())
