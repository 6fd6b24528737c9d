"""Trajectory fusion as DenoiseFn wrappers. SatDiffMoE's: N = 1 is plain sampling, the noise component
is kept, trajectories are pulled together, and the center search minimises its distance. The weighted
pull: estimates move toward the weighted center, a trajectory of weight 0 does not move it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from satsr.diffusion.fusion import TrajectoryFusion, WeightedPull, find_center, l2_center, pointwise
from satsr.diffusion.samplers import SAMPLERS, get_sampler, sample_ddim, sample_euler
from satsr.diffusion.schedules import karras_sigmas

#: Each trajectory's conditioning: the point its (ideal) denoiser believes in.
POINTS = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, -1.0]])


def point_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """The exact D(x, sigma) when trajectory i's data is N(POINTS[i], I): a posterior wide enough that
    where a trajectory goes depends on its path, as for a real conditional model."""
    s = sigma.reshape(-1, 1).to(x.dtype)
    return (x + s**2 * POINTS[: len(x)]) / (1 + s**2)


def sigmas(steps: int = 50) -> Tensor:
    return karras_sigmas(steps, sigma_min=0.01, sigma_max=10.0)


def start(n: int) -> Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0)) * 10.0


def test_one_trajectory_is_plain_ddim() -> None:
    s = sigmas()
    fused = sample_ddim(TrajectoryFusion(point_denoiser, s), start(1), s)
    torch.testing.assert_close(fused, sample_ddim(point_denoiser, start(1), s))


def test_the_noise_component_is_kept() -> None:
    """A fused step is z0' + r (x - z0): only the clean component moves (Song et al. 2024, Eq. 7)."""
    s = sigmas(6)
    x = start(4)
    fusion = TrajectoryFusion(point_denoiser, s, every=1, strength=0.3)
    returned = fusion(x, s[0].expand(4))
    z0 = point_denoiser(x, s[0].expand(4))
    r = float(s[1] / s[0])
    ddim_step = returned + r * (x - returned)
    torch.testing.assert_close(ddim_step, 0.7 * z0 + 0.3 * z0.mean(0, keepdim=True) + r * (x - z0))


@pytest.mark.parametrize("sampler", [sample_ddim, sample_euler])
def test_fusion_pulls_the_revisits_together_around_their_center(sampler) -> None:  # type: ignore[no-untyped-def]
    s = sigmas()
    alone = sampler(point_denoiser, start(4), s)
    fusion = TrajectoryFusion(point_denoiser, s, every=5, strength=0.5)
    together = sampler(fusion, start(4), s)
    spread = lambda z: (z - z.mean(0)).norm(dim=1).mean()  # noqa: E731
    assert spread(together) < 0.8 * spread(alone)
    torch.testing.assert_close(together.mean(0), alone.mean(0), atol=0.05, rtol=0)
    assert fusion.fused_steps == list(range(0, 50, 5))


def test_center_search_finds_the_minimiser_of_its_distance() -> None:
    z0 = torch.randn(7, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    # The search starts from the mean (the L2 center); summed L1 distances move it to the per-element
    # median (unique for an odd count).
    l1 = find_center(pointwise(lambda x, z: (x - z).abs().flatten(1).mean(1)), steps=300, lr=0.02, batch=7)(
        z0
    )
    torch.testing.assert_close(l1, z0.median(dim=0, keepdim=True).values, atol=0.05, rtol=0)
    assert (l2_center(z0) - z0.median(dim=0, keepdim=True).values).abs().max() > 0.3  # a real move


def test_bad_settings_and_foreign_sigmas_are_refused() -> None:
    with pytest.raises(ValueError, match="every"):
        TrajectoryFusion(point_denoiser, sigmas(), every=0)
    with pytest.raises(ValueError, match="strength"):
        TrajectoryFusion(point_denoiser, sigmas(), strength=1.5)
    with pytest.raises(ValueError, match="not a step"):
        TrajectoryFusion(point_denoiser, sigmas())(start(2), torch.tensor(3.3333))


def test_an_offset_moves_the_center_into_the_clean_space() -> None:
    """Residual denoisers: the center of offset + D is sought, and each trajectory keeps its offset."""
    s = sigmas(6)
    x = start(4)
    offset = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
    fusion = TrajectoryFusion(point_denoiser, s, every=1, strength=1.0, offset=offset)
    returned = fusion(x, s[0].expand(4))
    z0 = point_denoiser(x, s[0].expand(4))
    r = float(s[1] / s[0])
    clean_after = offset + returned + r * (x - returned) - r * (x - z0)  # offset + the fused clean part
    torch.testing.assert_close(clean_after, (offset + z0).mean(0, keepdim=True).expand(4, 2))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_only_the_samplers_whose_step_it_back_solves_take_the_fusion(name: str) -> None:
    """TrajectoryFusion returns (z0' - r z0) / (1 - r), right for DDIM (eta 0) and Euler only: every
    other sampler, and DDIM with eta > 0, refuses it instead of silently fusing wrongly."""
    s = sigmas(6)
    fusion = TrajectoryFusion(point_denoiser, s, every=1, strength=0.5)
    if name in TrajectoryFusion.compatible_samplers:
        assert get_sampler(name)(fusion, start(3), s).shape == (3, 2)
    else:
        with pytest.raises(ValueError, match=f"exact only under the ddim or euler sampler, not {name}"):
            get_sampler(name)(fusion, start(3), s)
    with pytest.raises(ValueError, match="not ddim_ancestral"):
        sample_ddim(fusion, start(3), s, eta=0.5)


def test_a_fusion_config_takes_no_other_sampler() -> None:
    from satsr.models.revisit_fusion import FusionConfig

    assert FusionConfig(sampler="euler").sampler == "euler"
    for name in ("heun", "dpmpp_2m"):
        with pytest.raises(ValueError, match="sampler must be one of ddim, euler"):
            FusionConfig(sampler=name)


def test_weighted_pull_moves_every_estimate_to_the_weighted_center_and_ignores_weight_zero() -> None:
    x = torch.zeros(3, 1, 2, 2)
    weights = torch.ones(3, 1, 2, 2)
    weights[2] = 0.0  # trajectory 2 is not trusted anywhere
    weights[1, :, 0, 0] = 3.0  # trajectory 1 is trusted three times as much at one pixel

    def denoise(xx: Tensor, sigma: Tensor) -> Tensor:  # trajectory i believes in the value i
        return torch.arange(3.0).reshape(3, 1, 1, 1).expand_as(xx).clone()

    full = WeightedPull(denoise, weights, strength=1.0)(x, torch.full((3,), 0.5))
    assert torch.all(full[:, :, 0, 0] == 0.75) and torch.all(full[:, :, 1, 1] == 0.5)
    half = WeightedPull(denoise, weights, strength=0.5)(x, torch.full((3,), 0.5))
    torch.testing.assert_close(half[:, 0, 1, 1], torch.tensor([0.25, 0.75, 1.25]))
    offset = torch.full((3, 1, 2, 2), 10.0)  # residual denoisers: the center is taken of offset + D
    torch.testing.assert_close(WeightedPull(denoise, weights, 1.0, offset)(x, torch.full((3,), 0.5)), full)
    assert torch.equal(WeightedPull(denoise, weights, 0.0)(x, torch.full((3,), 0.5)), denoise(x, x))


def test_weighted_pull_by_agreement_keeps_the_anchors_estimate_where_another_disagrees() -> None:
    """With ``agreement_scale``, a trajectory whose estimate is far from the first (the anchor's) at a pixel
    hardly pulls there; one that agrees within the scale still does."""
    x = torch.zeros(2, 1, 1, 2)
    weights = torch.ones(2, 1, 1, 2)

    def denoise(xx: Tensor, sigma: Tensor) -> Tensor:  # the other agrees at pixel 0 (0.01), not at 1 (1.0)
        out = torch.zeros_like(xx)
        out[1, 0, 0] = torch.tensor([0.01, 1.0])
        return out

    pulled = WeightedPull(denoise, weights, 1.0, agreement_scale=0.05)(x, torch.full((2,), 0.5))
    a_near, a_far = 1 / (1 + 0.2**2), 1 / (1 + 20.0**2)
    torch.testing.assert_close(pulled[0, 0, 0, 0], torch.tensor(0.01 * a_near / (1 + a_near)))
    torch.testing.assert_close(pulled[0, 0, 0, 1], torch.tensor(1.0 * a_far / (1 + a_far)))
    assert float(pulled[0, 0, 0, 1]) < 0.003
    plain = WeightedPull(denoise, weights, 1.0)(x, torch.full((2,), 0.5))
    torch.testing.assert_close(plain[0, 0, 0], torch.tensor([0.005, 0.5]))


def test_weighted_pull_leaves_estimates_at_or_above_below_sigma_alone() -> None:
    x = torch.zeros(2, 1, 1, 1)

    def denoise(xx: Tensor, sigma: Tensor) -> Tensor:
        return torch.arange(2.0).reshape(2, 1, 1, 1).expand_as(xx).clone()

    pull = WeightedPull(denoise, torch.ones(2, 1, 1, 1), 1.0, below_sigma=2.0)
    assert torch.equal(pull(x, torch.full((2,), 2.0)), denoise(x, x))  # the first, high-noise estimate
    assert torch.equal(pull(x, torch.full((2,), 1.0)).flatten(), torch.tensor([0.5, 0.5]))


def test_weighted_pull_refuses_a_strength_outside_zero_one_and_weights_without_one_channel() -> None:
    with pytest.raises(ValueError, match="strength"):
        WeightedPull(point_denoiser, torch.ones(2, 1, 1, 1), strength=1.5)
    with pytest.raises(ValueError, match="weights must be"):
        WeightedPull(point_denoiser, torch.ones(2, 3, 1, 1))
    with pytest.raises(ValueError, match="agreement_scale"):
        WeightedPull(point_denoiser, torch.ones(2, 1, 1, 1), agreement_scale=0.0)
