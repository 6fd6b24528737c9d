"""The assembled latent diffusion SR model with tiny parts: sampling contract, noise field, loading."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from tests.conftest import SPACE_TO_DEPTH, lr_batch, save_ldm, time_conditioned_ldm, tiny_ldm

import satsr
from satsr.cli import main
from satsr.data.registration import translate
from satsr.data.revisit_weights import RevisitWeighting
from satsr.diffusion.noise import NOISE_BLOCK, SeededNoise, field_noise, mix_seed
from satsr.diffusion.precond import bind
from satsr.diffusion.samplers import sample_ddim
from satsr.diffusion.schedules import karras_sigmas
from satsr.io.bands import S2_RGBN
from satsr.models.consistency import project_to_lr, sensor_degradation
from satsr.models.revisit_fusion import FusionConfig
from satsr.pipelines import uncertainty_path


def test_samples_have_the_hr_shape_and_are_fixed_by_their_seed() -> None:
    model, lr = tiny_ldm(), lr_batch()
    a = model.sample(lr, seeds=[3, 4])
    assert a.shape == (2, 4, 64, 64) and torch.isfinite(a).all()
    torch.testing.assert_close(model.sample(lr, seeds=[3, 4]), a)
    # Item 1 drawn alone with its seed equals item 1 of the batch.
    torch.testing.assert_close(model.sample(lr[1:], seeds=[4]), a[1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model.sample(lr, seeds=[5, 6]), a)


def test_lr_consistency_makes_samples_agree_with_the_lr() -> None:
    lr = lr_batch()
    degrade = sensor_degradation(4, S2_RGBN)
    errors = {}
    for on in (False, True):
        sr = tiny_ldm(lr_consistency=on).sample(lr, seeds=[0, 1])
        errors[on] = float((degrade(sr) - lr).abs().mean())
    assert errors[True] < 0.1 * errors[False]


def test_field_noise_is_the_same_wherever_a_tile_asks() -> None:
    whole = field_noise(7, (0, 0), (4, 3 * NOISE_BLOCK, 3 * NOISE_BLOCK))
    tile = field_noise(7, (20, 45), (4, 40, 30))
    torch.testing.assert_close(tile, whole[:, 20:60, 45:75])
    assert not torch.allclose(field_noise(8, (20, 45), (4, 40, 30)), tile)


def test_overlapping_tiles_start_from_the_same_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles of one scene (same seed, LR offsets) share the scene-wide noise field where they overlap."""
    started: list[torch.Tensor] = []

    def capture(denoise, x, sigmas, noise=None, callback=None):  # type: ignore[no-untyped-def]
        started.append(x.clone())
        return torch.zeros_like(x)

    monkeypatch.setattr("satsr.models.ldm.get_sampler", lambda name: capture)
    tiny_ldm().sample(lr_batch(), seeds=[9, 9], origins=[(0, 0), (4, 8)])
    x = started[0]
    torch.testing.assert_close(x[0, :, 4:16, 8:16], x[1, :, 0:12, 0:8])
    assert not torch.allclose(x[0, :, :12, :8], x[1, :, :12, :8])


@pytest.fixture
def tiny_ldm_dir(tmp_path: Path) -> Path:
    return save_ldm(tiny_ldm(), tmp_path / "tiny-ldm")


def test_bundled_format_loads_and_upscales_a_file_with_uncertainty(
    tiny_ldm_dir: Path, s2_tif: Path, tmp_path: Path
) -> None:
    upscaler = satsr.load(tiny_ldm_dir)
    assert upscaler.stochastic and upscaler.default_steps == 3
    out = satsr.upscale_file(
        s2_tif, tmp_path / "sr.tif", upscaler, samples=2, seed=1, tile_size=24, overlap=4
    )
    with rasterio.open(out) as sr, rasterio.open(uncertainty_path(out)) as std:
        assert sr.shape == (160, 208) and std.shape == sr.shape
        assert sr.tags()["SATSR_STEPS"] == "3" and sr.tags()["SATSR_DETAIL"] == "1"
        sigma = std.read()
    assert np.nanmax(sigma) > 0
    item = json.loads(out.with_suffix(".json").read_text())
    assert item["properties"]["satsr:detail"] == 1.0


def test_evaluate_gives_one_row_per_steps_and_samples(
    tiny_ldm_dir: Path, s2_tif: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tiny_ldm_dir), "--data", str(s2_tif), "--output", str(out), "--no-fid"]
    assert main([*args, "--samples", "1", "2", "--steps", "2", "3", "--crop", "0", "--seed", "5"]) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    rows = {f"tiny-ldm ({k} steps, {n})" for k in (2, 3) for n in ("1 sample", "mean of 2")}
    assert set(results) == rows | {"bicubic"}
    assert results["tiny-ldm (3 steps, 1 sample)"]["psnr"] != results["tiny-ldm (3 steps, mean of 2)"]["psnr"]


def test_lr_sides_the_unet_cannot_halve_are_padded_and_cropped() -> None:
    lr = torch.rand(1, 4, 10, 13) * 0.3
    assert tiny_ldm().sample(lr, seeds=[0]).shape == (1, 4, 40, 52)


def test_evaluate_lr_consistency_both_shows_the_projection_helps(
    tiny_ldm_dir: Path, s2_tif: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tiny_ldm_dir), "--data", str(s2_tif), "--output", str(out), "--no-fid"]
    assert main([*args, "--lr-consistency", "both", "--steps", "2", "--crop", "0"]) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    on, off = (
        results["tiny-ldm (2 steps, 1 sample)"],
        results["tiny-ldm (2 steps, 1 sample, no LR consistency)"],
    )
    assert on["reflectance"] < off["reflectance"]


def test_upscale_refuses_the_consistency_switch_for_a_model_without_one(s2_tif: Path, tmp_path: Path) -> None:
    assert main(["upscale", str(s2_tif), str(tmp_path / "sr.tif"), "--no-lr-consistency"]) == 2
    assert not (tmp_path / "sr.tif").exists()


#: SatDiffMoE as published (DDIM, a pull every 2 steps, LPIPS in the center's distance), briefly.
SATDIFFMOE = FusionConfig(method="satdiffmoe", steps=6, every=2, alpha=0.2)


def test_satdiffmoe_fusion_of_revisits_gives_one_image_fixed_by_the_seed() -> None:
    model, lrs = time_conditioned_ldm(), lr_batch(3)
    fused = model.fuse(lrs, [0.0, -10.0, 25.0], seed=1, config=SATDIFFMOE)
    assert fused.shape == (1, 4, 64, 64) and torch.isfinite(fused).all()
    torch.testing.assert_close(model.fuse(lrs, [0.0, -10.0, 25.0], seed=1, config=SATDIFFMOE), fused)
    assert not torch.allclose(model.fuse(lrs, [0.0, -10.0, 25.0], seed=2, config=SATDIFFMOE), fused)
    # The time difference is seen: the same revisits dated otherwise give another image.
    assert not torch.allclose(model.fuse(lrs, [90.0, 90.0, 90.0], seed=1, config=SATDIFFMOE), fused)


def test_satdiffmoe_fusion_of_one_revisit_is_plain_conditional_ddim() -> None:
    model, lr = time_conditioned_ldm(), lr_batch(1)
    fused = model.fuse(lr, [12.0], seed=4, config=FusionConfig(method="satdiffmoe", steps=5))
    cond, z_ref = model.condition(lr)
    sigmas = karras_sigmas(5, model.sigma_min, model.sigma_max)
    noise = SeededNoise([mix_seed(4, (0, 0))])
    x = field_noise(mix_seed(4, (0, 0)), (0, 0), z_ref.shape[1:])[None] * float(sigmas[0])
    with torch.no_grad():
        latent = z_ref + sample_ddim(
            bind(model.precond, cond, dt_days=torch.tensor([12.0])), x, sigmas, noise=noise
        )
        expected = project_to_lr(model.autoencoder.decode_latent(latent), lr, sensor_degradation(4, S2_RGBN))
    torch.testing.assert_close(fused, expected)


def test_anchored_fusion_of_one_revisit_is_the_models_own_sampling_from_the_scene_noise() -> None:
    model, lr = tiny_ldm(**SPACE_TO_DEPTH, detail=0.5), lr_batch(1)
    fused = model.fuse(lr, [12.0], seed=4, steps=3)
    reference = model.reference_sr(lr)
    cond, z_ref = model.condition(lr, reference)
    sigmas = karras_sigmas(3, model.sigma_min, model.sigma_max)
    seed = mix_seed(4, (0, 0))
    x = field_noise(seed, (0, 0), z_ref.shape[1:])[None] * float(sigmas[0])
    with torch.no_grad():
        residual, mean = model.run_sampler(model.denoiser(cond), x, sigmas, SeededNoise([seed]))
        expected = model.finish(z_ref, residual, mean, lr, reference)
    torch.testing.assert_close(fused, expected)


def test_anchored_fusion_follows_agreeing_dates_and_falls_back_to_the_anchor_where_they_disagree() -> None:
    """A revisit of another place altogether (a wrong date) barely moves the anchor's result; without
    the weights it would drag it; a revisit that agrees does change it (it is fused), and the seed fixes
    every result."""
    model = tiny_ldm(**SPACE_TO_DEPTH)
    anchor, wrong = lr_batch(2).split(1)
    agreeing = anchor + 0.002 * torch.randn(anchor.shape, generator=torch.Generator().manual_seed(5))
    alone = model.fuse(anchor, [0.0], seed=3)
    with_wrong = model.fuse(torch.cat([anchor, wrong]), [0.0, 4.0], seed=3)
    unweighted = model.fuse(
        torch.cat([anchor, wrong]),
        [0.0, 4.0],
        seed=3,
        config=FusionConfig(weighting=RevisitWeighting(weigh=False)),
    )
    assert (with_wrong - alone).abs().mean() < 0.05 * (unweighted - alone).abs().mean()
    fused = model.fuse(torch.cat([anchor, agreeing]), [0.0, 4.0], seed=3)
    assert not torch.allclose(fused, alone, atol=1e-5)
    torch.testing.assert_close(model.fuse(torch.cat([anchor, agreeing]), [0.0, 4.0], seed=3), fused)
    assert not torch.allclose(model.fuse(torch.cat([anchor, agreeing]), [0.0, 4.0], seed=4), fused)


@pytest.mark.parametrize("origin", [(0, 0), (16, 8)])
def test_one_revisit_fused_is_that_revisit_upscaled_with_the_same_seed(origin: tuple[int, int]) -> None:
    """The anchor's trajectory draws as ``satsr upscale --seed`` draws its sample 0 (on a tile at
    ``origin``): with no other revisit, fusion gives exactly the single-image result."""
    model, lr = tiny_ldm(**SPACE_TO_DEPTH), lr_batch(1)
    fused = model.fuse(lr, [0.0], seed=3, origin=origin)
    single = model.sample(lr, seeds=[mix_seed(3, 0)], origins=[origin])
    torch.testing.assert_close(fused, single, rtol=0, atol=0)


def test_a_revisit_trusted_little_everywhere_is_left_out_of_the_multi_frame_projection() -> None:
    """A hazy date (contrast 0.55x: its weight stays below ``MIN_PROJECTION_WEIGHT``) is not projected onto:
    the multi-frame result is the anchor-only one."""
    from satsr.models.revisit_fusion import MIN_PROJECTION_WEIGHT, align_revisits

    model = tiny_ldm(**SPACE_TO_DEPTH)
    anchor = lr_batch(1)
    hazy = 0.55 * anchor + 0.5 * float(anchor.mean())
    stack = torch.cat([anchor, hazy])
    assert 0.01 < float(align_revisits(stack, [0.0, 2.0]).weights[1].max()) < MIN_PROJECTION_WEIGHT
    multi = model.fuse(stack, [0.0, 2.0], seed=1, config=FusionConfig(project_onto="revisits"))
    torch.testing.assert_close(
        multi, model.fuse(stack, [0.0, 2.0], seed=1, config=FusionConfig(project_onto="anchor"))
    )


def test_anchored_fusion_keeps_the_anchors_own_first_estimate_unless_asked() -> None:
    """One step is the posterior mean alone: by default no other revisit pulls it (the same result as with
    the pull switched off); with ``pull_mean`` it is the weighted mean of the revisits' estimates."""
    model = tiny_ldm(**SPACE_TO_DEPTH)
    anchor = lr_batch(1)
    other = anchor + 0.002 * torch.randn(anchor.shape, generator=torch.Generator().manual_seed(5))
    stack = torch.cat([anchor, other])

    def fuse(**changes: object) -> torch.Tensor:
        config = dataclasses.replace(FusionConfig(project_onto="anchor", pull_agreement=None), **changes)
        return model.fuse(stack, [0.0, 4.0], seed=3, steps=1, config=config)

    torch.testing.assert_close(fuse(), fuse(strength=0.0))
    assert not torch.allclose(fuse(pull_mean=True), fuse(), atol=1e-5)
    with pytest.raises(ValueError, match="pull_agreement"):
        FusionConfig(pull_agreement=0.0)


def test_anchored_fusion_samples_at_most_max_trajectories() -> None:
    model, lrs = tiny_ldm(**SPACE_TO_DEPTH), lr_batch(1).repeat(5, 1, 1, 1)
    seen: list[int] = []
    denoiser = model.denoiser

    def counting(cond: torch.Tensor, **kwargs: torch.Tensor):  # type: ignore[no-untyped-def]
        seen.append(len(cond))
        return denoiser(cond, **kwargs)

    model.denoiser = counting  # type: ignore[method-assign]
    model.fuse(lrs, [0.0] * 5, seed=0, steps=2, config=FusionConfig(max_trajectories=3))
    assert seen == [3]


def test_fusion_refuses_mismatched_dates() -> None:
    with pytest.raises(ValueError, match="2 revisits but 1 time differences"):
        time_conditioned_ldm().fuse(lr_batch(2), [3.0], seed=0)


def test_fusion_pads_and_crops_lr_sides_the_unet_cannot_halve() -> None:
    lrs = torch.rand(2, 4, 10, 13) * 0.3
    assert time_conditioned_ldm().fuse(lrs, [0.0, 5.0], seed=0, steps=2).shape == (1, 4, 40, 52)


def test_a_lossless_first_stage_serves_the_same_sampler() -> None:
    model, lr = tiny_ldm(**SPACE_TO_DEPTH), lr_batch()
    sr = model.sample(lr, seeds=[0, 1])
    assert sr.shape == (2, 4, 64, 64) and torch.isfinite(sr).all()
    torch.testing.assert_close(model.sample(lr, seeds=[0, 1]), sr)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler", "heun", "ddim"])
def test_detail_zero_gives_the_posterior_mean_and_one_the_sample(sampler: str) -> None:
    lr = lr_batch()
    full = tiny_ldm(sampler=sampler, lr_consistency=False).sample(lr, seeds=[0, 1])
    model = tiny_ldm(sampler=sampler, lr_consistency=False, detail=0.0)
    mean = model.sample(lr, seeds=[0, 1])
    # The mean: the UNet's denoised estimate at sigma_max of the same starting noise, decoded.
    cond, z_ref = model.condition(lr)
    noise = SeededNoise([mix_seed(s, (0, 0)) for s in (0, 1)], lr.device)
    x = noise.randn(z_ref.shape, dtype=z_ref.dtype) * model.sigma_max
    expected = model.autoencoder.decode_latent(
        z_ref + bind(model.precond, cond)(x, torch.full((2,), model.sigma_max))
    )
    torch.testing.assert_close(mean, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mean, full, atol=1e-3)
    model.detail = 0.5  # halfway between the decoded mean and the decoded sample
    half = model.sample(lr, seeds=[0, 1])
    assert float((half - mean).abs().mean()) < float((full - mean).abs().mean())
    assert float((half - full).abs().mean()) < float((full - mean).abs().mean())


def test_the_structure_gate_weights_detail_by_what_the_reference_changes() -> None:
    model, lr = tiny_ldm(lr_consistency=False, detail=0.8, detail_threshold=0.05), lr_batch(1)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    bump = torch.zeros_like(bicubic)
    bump[..., 24:32, 24:32] = 1.0  # one LR pixel's worth of change, far above the threshold
    weight = model.detail_weight(lr, bicubic + bump)
    assert weight.shape == (1, 1, 64, 64)
    assert float(weight[..., 26:30, 26:30].min()) == pytest.approx(0.8)  # detail x min(1, structure / t)
    assert float(weight[..., :12, :].max()) == 0.0 and float(weight[..., 52:, :].max()) == 0.0
    torch.testing.assert_close(model.detail_weight(lr, bicubic), torch.zeros_like(weight))


def test_a_reference_that_changes_nothing_shuts_the_gate_and_a_low_threshold_opens_it() -> None:
    lr = lr_batch()
    mean = tiny_ldm(lr_consistency=False, detail=0.0).sample(lr, seeds=[0, 1])
    sample = tiny_ldm(lr_consistency=False).sample(lr, seeds=[0, 1])
    open_gate = tiny_ldm(lr_consistency=False, detail_threshold=1e-9).sample(lr, seeds=[0, 1])
    torch.testing.assert_close(open_gate, sample, atol=1e-5, rtol=1e-5)
    shut = tiny_ldm(lr_consistency=False, detail_threshold=0.05)
    assert shut.reference is not None
    torch.nn.init.zeros_(shut.reference.upsample[0].weight)  # the reference becomes bicubic
    torch.nn.init.zeros_(shut.reference.upsample[0].bias)
    mean_bicubic_ref = tiny_ldm(lr_consistency=False, detail=0.0)
    mean_bicubic_ref.reference.load_state_dict(shut.reference.state_dict())  # type: ignore[union-attr]
    torch.testing.assert_close(shut.sample(lr, seeds=[0, 1]), mean_bicubic_ref.sample(lr, seeds=[0, 1]))
    assert not torch.allclose(mean, sample, atol=1e-3)
    with pytest.raises(ValueError, match="needs a reference network"):
        tiny_ldm(reference=None, detail_threshold=0.1)


def test_detail_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="detail must be in"):
        tiny_ldm(detail=1.5)


def test_bfloat16_sampling_runs_the_network_in_bf16_and_stays_close_to_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``precision="bfloat16"`` where bf16 is native: the UNet's convolutions see bf16 (the speed lever),
    the sample stays a float32 image within bf16 rounding of the float32 one, and the seed still fixes it."""
    monkeypatch.setattr("satsr.models.ldm.bfloat16_is_native", lambda device_type: True)
    lr = lr_batch()
    exact = tiny_ldm(lr_consistency=False).sample(lr, seeds=[0, 1])
    model = tiny_ldm(lr_consistency=False, precision="bfloat16")
    seen: list[torch.dtype] = []
    hook = model.precond.net.conv_in.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    fast = model.sample(lr, seeds=[0, 1])
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    assert float((fast - exact).abs().mean()) < 0.03 * float(exact.abs().mean())  # an untrained UNet
    torch.testing.assert_close(model.sample(lr, seeds=[0, 1]), fast)
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        tiny_ldm(precision="float16")


def test_bfloat16_falls_back_to_float32_where_bf16_is_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 is several times slower than float32: there the model samples in float32 exactly."""
    monkeypatch.setattr("satsr.models.ldm.bfloat16_is_native", lambda device_type: False)
    lr = lr_batch()
    torch.testing.assert_close(
        tiny_ldm(lr_consistency=False, precision="bfloat16").sample(lr, seeds=[0, 1]),
        tiny_ldm(lr_consistency=False).sample(lr, seeds=[0, 1]),
        rtol=0,
        atol=0,
    )


def test_anchored_fusion_projects_onto_the_anchor_or_onto_the_weighted_composite() -> None:
    """Projected onto the anchor, the output seen at the LR grid is the anchor's LR; projected onto the
    composite it is the weighted mean of the aligned revisits (here two that agree), closer to their mean
    than the anchor."""
    model = tiny_ldm(**SPACE_TO_DEPTH)
    anchor = lr_batch(1)
    other = anchor + 0.004 * torch.randn(anchor.shape, generator=torch.Generator().manual_seed(2))
    stack, degrade = torch.cat([anchor, other]), sensor_degradation(4, S2_RGBN)
    on_anchor = model.fuse(stack, [0.0, 3.0], seed=1, config=FusionConfig(project_onto="anchor"))
    on_composite = model.fuse(stack, [0.0, 3.0], seed=1, config=FusionConfig(project_onto="composite"))
    mean = stack.mean(0, keepdim=True)
    assert (degrade(on_anchor) - anchor).abs().mean() < (degrade(on_anchor) - mean).abs().mean()
    assert (degrade(on_composite) - mean).abs().mean() < (degrade(on_anchor) - mean).abs().mean()


def test_anchored_fusion_can_project_onto_every_revisit_on_its_own_grid() -> None:
    """The multi-frame back-projection: the output, seen through the second revisit's grid (a third of an
    LR pixel off the anchor's), matches that revisit better than the anchor-only projection does, and
    still matches the anchor as well as that one. It is the default."""
    model = tiny_ldm(**SPACE_TO_DEPTH)
    assert FusionConfig().project_onto == "revisits"
    hr = torch.nn.functional.interpolate(lr_batch(1), scale_factor=4, mode="bicubic").clamp(0.01, 1)
    degrade = sensor_degradation(4, S2_RGBN)
    anchor, other = degrade(hr), degrade(translate(hr, (0.0, -4 / 3)))  # (0, 1/3) moves it onto the anchor
    stack = torch.cat([anchor, other])
    multi = model.fuse(stack, [0.0, 3.0], seed=1, config=FusionConfig(project_onto="revisits"))
    single = model.fuse(stack, [0.0, 3.0], seed=1, config=FusionConfig(project_onto="anchor"))

    def misfit(sr: torch.Tensor, lr: torch.Tensor, shift: float) -> float:
        return float((degrade(translate(sr, (0.0, -4 * shift))) - lr)[..., 2:-2, 2:-2].abs().mean())

    assert misfit(multi, other, 1 / 3) < 0.7 * misfit(single, other, 1 / 3)  # measured: 0.57x
    assert misfit(multi, anchor, 0.0) <= misfit(single, anchor, 0.0) * 1.05
