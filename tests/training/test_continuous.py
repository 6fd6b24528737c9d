"""E2DiffSR stage 1, stage 2 and the regression baseline: tiny models, one generated batch."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tests.conftest import pictures
from torch.utils.data import DataLoader, TensorDataset

import satsr
from satsr.data.datamodules import AERIAL_RGB
from satsr.evaluation.metrics import lr_grid_pattern
from satsr.models.continuous import ContinuousSR
from satsr.training.adversarial import ReconstructionTerms, artifact_map
from satsr.training.callbacks import ExportBundled
from satsr.training.cli import main
from satsr.training.continuous import (
    STAGE1_PARTS,
    ContinuousRegressionModule,
    LatentPriorModule,
    PipelineFinetuneModule,
    PriorAutoencoderModule,
    hr_grid,
)
from satsr.training.continuous_base import load_grown

TINY = {
    "channels": 8, "num_units": 4, "blocks_per_unit": 1, "pyramid_channels": 4, "mlp_hidden": 16,
    "mlp_layers": 2, "encoder_channels": [4, 4, 8, 8], "denoiser_channels": [8, 8],
}  # fmt: skip


def batch(scale: float = 2.5, lr_side: int = 8, items: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Textured HR crops (smooth field + fine stripes that bicubic blurs) and their bicubic LR."""
    side = round(lr_side * scale)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")

    def band(i: int, c: int) -> torch.Tensor:
        smooth = 0.2 * torch.sin(xx / (2 + i) + c) * torch.cos(yy / 3)
        return 0.5 + smooth + 0.15 * torch.sin(1.1 * xx + 0.6 * yy + c)

    hr = torch.stack([torch.stack([band(i, c) for c in range(3)]) for i in range(items)])
    lr = F.interpolate(hr, size=(lr_side, lr_side), mode="bicubic", antialias=True, align_corners=False)
    return lr, hr


def fit(module: L.LightningModule, data: tuple[torch.Tensor, torch.Tensor], steps: int, tmp_path: Path,
        callbacks: list[L.Callback] | None = None) -> L.Trainer:  # fmt: skip
    trainer = L.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=callbacks or [], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(*data), batch_size=len(data[0])))
    return trainer


def test_the_regression_baseline_learns_and_exports_a_rebuildable_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = ContinuousRegressionModule(network=TINY, lr=1e-2)
    lr, hr = batch()
    before = F.l1_loss(module.predict(lr, hr), hr).item()
    out = tmp_path / "model"
    fit(module, (lr, hr), 40, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)])
    with torch.no_grad():
        after = module.predict(lr, hr)
    assert F.l1_loss(after, hr).item() < 0.7 * before
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "ContinuousSR" and config["prior"] is False
    rebuilt = ContinuousSR(**{k: v for k, v in config.items() if k not in ("architecture", "bands")})
    rebuilt.load_state_dict(load_file(out / "model.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(lr, 2.5), after.clamp(0, 1))


def test_stage1_reduces_l1_and_switches_the_discriminator_on_after_the_warm_up(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PriorAutoencoderModule(network=TINY, lr=1e-2, adv_start=90, adv_weight=1e-2)
    lr, hr = batch(scale=4.0)  # 32 px: room for the discriminator's three stride-2 layers
    before = F.l1_loss(module.predict(lr, hr), hr).item()
    disc_before = [p.detach().clone() for p in module.discriminator.parameters()]
    condnet_before = {k: v.clone() for k, v in module.network.condnet.state_dict().items()}  # type: ignore[union-attr]
    # 60 steps left L1 at 0.91-0.97x its start for two of three seeds on an AMD EPYC (0.35x for the
    # third): too close to the bound to say anything; 100 steps give 0.20-0.27x for all three.
    trainer = fit(module, (lr, hr), 100, tmp_path)
    # 90 generator-only steps, then 5 batches stepping both optimisers (2 steps each).
    assert trainer.global_step == 100
    assert "train/d_loss" in trainer.callback_metrics and "train/g_adv" in trainer.callback_metrics
    assert any(
        not torch.equal(a, b) for a, b in zip(disc_before, module.discriminator.parameters(), strict=True)
    )
    with torch.no_grad():
        assert F.l1_loss(module.predict(lr, hr), hr).item() < 0.8 * before
    for key, value in module.network.condnet.state_dict().items():  # type: ignore[union-attr]
        torch.testing.assert_close(value, condnet_before[key])  # stage 1 leaves stage 2's parts alone


@pytest.fixture
def stage1_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    out = tmp_path / "stage1"
    module = PriorAutoencoderModule(network=TINY, lr=1e-2, adv_weight=0.0)
    fit(module, batch(), 5, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)])
    return out


@pytest.mark.parametrize(("kd_loss", "unrolled"), [(True, True), (False, True), (True, False)])
def test_stage2_learns_the_prior_with_stage1_frozen(
    stage1_dir: Path, tmp_path: Path, kd_loss: bool, unrolled: bool
) -> None:
    torch.manual_seed(0)
    module = LatentPriorModule(str(stage1_dir), lr=1e-2, kd_loss=kd_loss, unrolled=unrolled)
    stage1 = load_file(stage1_dir / "model.safetensors")
    lr, hr = batch()
    torch.manual_seed(1)
    before = module.losses(lr, hr)
    fit(module, (lr, hr), 40, tmp_path)
    torch.manual_seed(1)
    after = module.losses(lr, hr)
    assert after["loss"] < 0.7 * before["loss"]
    if kd_loss:
        assert after["kd"] < 0.7 * before["kd"]
    state = module.network.state_dict()
    for key, value in stage1.items():
        if key.split(".")[0] in STAGE1_PARTS:
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_stage2_unrolled_sampling_approaches_the_encoded_prior(stage1_dir: Path, tmp_path: Path) -> None:
    """After training, the 4-step chain from pure noise (inference) lands nearer z0 than at the start."""
    torch.manual_seed(0)
    module = LatentPriorModule(str(stage1_dir), lr=1e-2)
    lr, hr = batch()
    z0 = module.target(lr, hr)

    def sampled_error() -> float:
        with torch.no_grad():
            return F.l1_loss(module.network.sample_prior(lr, 2.5, [0, 1]), z0).item()

    before = sampled_error()
    out = tmp_path / "model"
    fit(module, (lr, hr), 40, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)])
    assert sampled_error() < 0.7 * before
    config = json.loads((out / "config.json").read_text())
    assert config["prior"] is True and config["encoder_channels"] == TINY["encoder_channels"]
    rebuilt = ContinuousSR(**{k: v for k, v in config.items() if k not in ("architecture", "bands")})
    rebuilt.load_state_dict(load_file(out / "model.safetensors"))
    with torch.no_grad():
        expected = module.network.render(
            lr, 2.5, hr_grid(lr, hr), module.network.sample_prior(lr, 2.5, [4, 5])
        )
        torch.testing.assert_close(rebuilt.eval()(lr, 2.5, seeds=[4, 5]), expected.clamp(0, 1))


def test_the_end_to_end_fine_tune_improves_the_inference_output_and_leaves_the_encoder(
    stage1_dir: Path, tmp_path: Path
) -> None:
    """The fine-tune trains what ``forward`` runs (the sampled prior, LR consistency included), from an
    exported two-stage model, and exports a model that keeps its LR consistency."""
    torch.manual_seed(0)
    two_stage = tmp_path / "two-stage"
    stage2 = LatentPriorModule(str(stage1_dir), network={"lr_consistency": True}, lr=1e-2)
    fit(stage2, batch(), 5, tmp_path, [ExportBundled(two_stage, bands=AERIAL_RGB)])
    module = PipelineFinetuneModule(str(two_stage), lr=1e-2, perceptual_weight=0.0, adv_weight=0.0)
    assert module.network.lr_consistency
    encoder = {k: v.clone() for k, v in module.network.encoder.state_dict().items()}  # type: ignore[union-attr]
    lr, hr = batch()

    def inference_l1() -> float:
        with torch.no_grad():
            return F.l1_loss(module.network(lr, 2.5, seeds=[0, 1]), hr).item()

    before = inference_l1()
    out = tmp_path / "finetuned"
    trainer = fit(module, (lr, hr), 40, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)])
    assert inference_l1() < 0.8 * before
    assert {"train/l1", "train/kd", "train/diffusion"} <= set(trainer.callback_metrics)
    for key, value in module.network.encoder.state_dict().items():  # type: ignore[union-attr]
        torch.testing.assert_close(value, encoder[key], rtol=0, atol=0)
    assert json.loads((out / "config.json").read_text())["lr_consistency"] is True


def test_the_artifact_map_marks_noisy_errors_the_reference_does_not_make() -> None:
    """LDL's map: high where the output's error is noisy (speckle on a flat field) and the reference's is
    smaller; zero where the output is closer to the target than the reference (a detail got right)."""
    hr = torch.full((1, 3, 32, 32), 0.5)
    speckle = 0.2 * (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) - 0.5)
    sr = hr.clone()
    sr[..., :, :16] += speckle[..., :, :16]  # artifacts on the left half
    blurred_reference = hr + 0.01  # a smooth, small error everywhere
    weight = artifact_map(sr, hr, blurred_reference)
    assert weight.shape == (1, 1, 32, 32) and not weight.requires_grad
    assert weight[..., :, :12].mean() > 100 * weight[..., :, 20:].abs().max().clamp_min(1e-12)
    assert (weight[..., :, 20:] == 0).all()  # right half: sr equals hr, closer than the reference
    assert (artifact_map(sr, hr, sr + 1.0) == 0).all()  # a reference worse everywhere: nothing marked
    with pytest.raises(ValueError, match="odd"):
        artifact_map(sr, hr, sr, window=4)


def test_the_fine_tune_artifact_term_follows_an_ema_of_the_network(stage1_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    two_stage = tmp_path / "two-stage"
    fit(
        LatentPriorModule(str(stage1_dir), lr=1e-2),
        batch(),
        2,
        tmp_path,
        [ExportBundled(two_stage, bands=AERIAL_RGB)],
    )
    module = PipelineFinetuneModule(
        str(two_stage), lr=1e-2, perceptual_weight=0.0, adv_weight=0.0, artifact_weight=10.0,
        reference_decay=0.5,
    )  # fmt: skip
    assert module.reference is not None
    start = {k: v.clone() for k, v in module.network.state_dict().items()}
    trainer = fit(module, batch(), 3, tmp_path)
    assert "train/artifact" in trainer.callback_metrics
    trained = [
        (ema, p, start[name])
        for (name, ema), p in zip(
            module.reference.named_parameters(), module.network.parameters(), strict=True
        )
        if p.requires_grad and not torch.equal(p, start[name])
    ]
    assert trained
    for ema, p, before in trained:  # decay 0.5 over 3 steps: the EMA lies between start and now
        assert not torch.equal(ema, p) and not torch.equal(ema, before)
    frozen = PipelineFinetuneModule(str(two_stage), artifact_weight=1.0, reference_dir=str(two_stage))
    assert frozen.reference is not None and not frozen.ema_reference
    with pytest.raises(ValueError, match="artifact_weight"):
        PipelineFinetuneModule(str(two_stage), artifact_weight=-1.0)


def test_the_end_to_end_fine_tune_needs_a_two_stage_model(tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    fit(
        ContinuousRegressionModule(network=TINY), batch(), 1, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)]
    )
    with pytest.raises(ValueError, match="with a prior"):
        PipelineFinetuneModule(str(out))


def test_stage2_refuses_a_baseline_as_stage1(tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    fit(
        ContinuousRegressionModule(network=TINY), batch(), 1, tmp_path, [ExportBundled(out, bands=AERIAL_RGB)]
    )
    with pytest.raises(ValueError, match="with a prior"):
        LatentPriorModule(str(out))


def test_query_crop_trains_on_a_window_of_the_hr_grid(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PriorAutoencoderModule(network=TINY, lr=1e-2, adv_start=0, query_crop=32)
    lr, hr = batch(scale=5.0)  # 40 px HR: the loss sees a 32 px window of it
    coords, target = module.query_window(lr, hr)
    assert coords.shape == (1, 32, 32, 2) and target.shape == (2, 3, 32, 32)
    full = hr_grid(lr, hr)
    top, left = (round(float(v) * 5.0 - 0.5) for v in coords[0, 0, 0])
    torch.testing.assert_close(coords, full[:, top : top + 32, left : left + 32])
    torch.testing.assert_close(target, hr[..., top : top + 32, left : left + 32])
    small_lr, small_hr = batch(scale=3.0)  # 24 px: smaller than the window, used whole
    assert module.query_window(small_lr, small_hr)[1].shape == small_hr.shape
    trainer = fit(module, (lr, hr), 4, tmp_path)
    assert trainer.global_step == 4 and "train/d_loss" in trainer.callback_metrics
    with pytest.raises(ValueError, match="query_crop"):
        ContinuousRegressionModule(network=TINY, query_crop=0)


def one_step(tmp_path: Path) -> L.Trainer:
    return L.Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip


def test_stage2_measures_its_latent_scaling_on_the_training_data_when_not_given(
    stage1_dir: Path, tmp_path: Path
) -> None:
    lr, hr = batch()
    data = L.LightningDataModule.from_datasets(TensorDataset(lr, hr), batch_size=2)
    module = LatentPriorModule(str(stage1_dir), lr=1e-2, scaling_batches=1)
    one_step(tmp_path).fit(module, datamodule=data)
    with torch.no_grad():  # the stage-1 encoder is frozen: z0 is what setup measured
        expected = 1.0 / float(module.network.encode(lr, hr).mode().std())
    assert module.network.latent_scaling == pytest.approx(expected) and expected != pytest.approx(1.0)
    assert module.network_config()["latent_scaling"] == module.network.latent_scaling
    given = LatentPriorModule(str(stage1_dir), latent_scaling=2.5)
    one_step(tmp_path).fit(given, datamodule=data)
    assert given.network.latent_scaling == 2.5


def test_init_dir_continues_from_exported_weights_of_the_same_kind(stage1_dir: Path) -> None:
    exported = load_file(stage1_dir / "model.safetensors")
    module = PriorAutoencoderModule(init_dir=str(stage1_dir))
    for key, value in module.network.state_dict().items():
        torch.testing.assert_close(value, exported[key], rtol=0, atol=0)
    assert module.network_config()["channels"] == TINY["channels"]
    with pytest.raises(ValueError, match="without a prior"):
        ContinuousRegressionModule(init_dir=str(stage1_dir))


def test_the_fine_tune_grows_the_prior_detail_path_onto_weights_without_it(stage1_dir: Path) -> None:
    """``network={"prior_detail": True}`` over a model trained without the path: the old weights load,
    the new one starts at zero (so the output is the old model's), and nothing else may be missing."""
    module = PipelineFinetuneModule(str(stage1_dir), network={"prior_detail": True})
    assert module.network_config()["prior_detail"] is True
    assert float(module.network.upsampler.detail.weight.detach().abs().sum()) == 0.0  # type: ignore[union-attr]
    exported = load_file(stage1_dir / "model.safetensors")
    for key, value in exported.items():
        torch.testing.assert_close(module.network.state_dict()[key], value, rtol=0, atol=0)
    del exported["upsampler.to_pyramid.weight"]
    with pytest.raises(ValueError, match="do not fit"):
        load_grown(ContinuousSR(**{**TINY, "prior": True}), exported)


def test_the_fine_tune_deepens_the_refinement_units_as_the_identity(stage1_dir: Path) -> None:
    """``network={"blocks_per_unit": 3}`` over weights with 1 IMDB per unit: the old weights load, the
    extra blocks pass their input on (zero ``fuse``) and the units' ``compress`` ignores them (zero
    columns), so the output is the old model's; the extra blocks are reachable by the gradient."""
    lr, _ = batch(scale=4.0)
    old = PipelineFinetuneModule(str(stage1_dir)).network.eval()
    module = PipelineFinetuneModule(str(stage1_dir), network={"blocks_per_unit": 3})
    assert module.network_config()["blocks_per_unit"] == 3
    unit = module.network.sr_branch.units[0]
    assert float(unit.blocks[2].fuse.weight.detach().abs().sum()) == 0.0
    assert float(unit.compress.weight.detach()[:, TINY["channels"] :].abs().sum()) == 0.0
    network = module.network.eval()
    with torch.no_grad():
        torch.testing.assert_close(network(lr, 4.0, [0, 1]), old(lr, 4.0, [0, 1]), rtol=0, atol=1e-6)
    network(lr, 4.0, [0, 1]).square().mean().backward()
    assert unit.compress.weight.grad is not None
    assert float(unit.compress.weight.grad[:, TINY["channels"] :].abs().sum()) > 0
    with pytest.raises(ValueError, match="do not fit"):
        PipelineFinetuneModule(str(stage1_dir), network={"channels": 12})


def test_the_fine_tune_grid_term_is_the_lr_grid_pattern_beyond_the_truths(stage1_dir: Path) -> None:
    """``grid_weight`` adds ``weight * relu(P(sr) - P(hr))`` (``lr_grid_pattern``) to the loss, with a
    gradient that reaches the network."""
    lr, hr = batch(scale=4.0)
    module = PipelineFinetuneModule(str(stage1_dir), grid_weight=2.0, perceptual_weight=0.0, adv_weight=0.0)
    torch.manual_seed(0)
    sr, _, extra = module.reconstruct(lr, hr)
    expected = (lr_grid_pattern(sr.float(), (8, 8)) - lr_grid_pattern(hr, (8, 8))).clamp_min(0).mean()
    assert float(expected) > 0  # an untrained upsampler draws on the LR grid
    torch.testing.assert_close(extra["grid"], 2.0 * expected)
    extra["grid"].backward()
    assert module.network.upsampler.mlp[-1].weight.grad.abs().sum() > 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="grid_weight"):
        PipelineFinetuneModule(str(stage1_dir), grid_weight=-1.0)


def test_the_fine_tune_can_trade_l1_for_the_squared_error(stage1_dir: Path) -> None:
    """``mse_weight`` adds ``weight * MSE(sr, hr)`` to the loss, ``l1_weight`` is kept for the L1 term
    of ``training_step``; neither may be negative, and not both 0."""
    lr, hr = batch(scale=4.0)
    module = PipelineFinetuneModule(
        str(stage1_dir), perceptual_weight=0.0, adv_weight=0.0, l1_weight=0.0, mse_weight=3.0
    )
    assert module.l1_weight == 0.0
    torch.manual_seed(0)
    sr, _, extra = module.reconstruct(lr, hr)
    torch.testing.assert_close(extra["mse"], 3.0 * torch.nn.functional.mse_loss(sr.float(), hr))
    assert "mse" not in PipelineFinetuneModule(str(stage1_dir)).reconstruct(lr, hr)[2]
    for l1_weight, mse_weight in [(0.0, 0.0), (-1.0, 1.0), (1.0, -1.0)]:
        with pytest.raises(ValueError, match="l1_weight, mse_weight"):
            PipelineFinetuneModule(str(stage1_dir), l1_weight=l1_weight, mse_weight=mse_weight)


def recipe(name: str, tmp_path: Path) -> Path:
    """``configs/NAME.yaml`` with its runs/ paths moved under ``tmp_path``."""
    text = (Path(__file__).parents[2] / "configs" / f"{name}.yaml").read_text()
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("runs/", f"{tmp_path}/runs/"))
    return path


def test_the_rgb_continuous_recipes_train_through_satsr_train(tmp_path: Path) -> None:
    """configs/rgb-continuous-stage1.yaml, rgb-continuous.yaml, rgb-continuous-regression.yaml, shrunk."""
    root = pictures(tmp_path / "data")
    shrink = [
        "--trainer.max_steps", "3", "--trainer.val_check_interval", "2", "--trainer.enable_progress_bar",
        "false", "--data.data_dir", str(root), "--data.lr_patch", "8", "--data.batch_size", "2",
        "--data.min_scale", "4", "--data.max_scale", "5", "--data.train_batches", "4",
        "--data.val_scales", "[2.6]", "--data.val_rounds", "1", "--data.num_workers", "0",
    ]  # fmt: skip
    tiny = ["--model.init_args.network", json.dumps(TINY)]
    stage1 = ["fit", "--config", str(recipe("rgb-continuous-stage1", tmp_path)), *shrink, *tiny]
    assert main([*stage1, "--model.init_args.adv_start", "1", "--model.init_args.query_crop", "32"]) == 0
    stage1_model = tmp_path / "runs" / "rgb-continuous-stage1" / "model"
    stage2 = ["fit", "--config", str(recipe("rgb-continuous", tmp_path)), *shrink]
    assert main([*stage2, "--model.init_args.scaling_batches", "2"]) == 0
    model = satsr.load(tmp_path / "runs" / "rgb-continuous" / "model")
    assert model.continuous and model.stochastic and model.bands == AERIAL_RGB
    config = json.loads((tmp_path / "runs" / "rgb-continuous" / "model" / "config.json").read_text())
    assert config["latent_scaling"] != 1.0 and config["channels"] == TINY["channels"]
    stage1_weights = load_file(stage1_model / "model.safetensors")
    final = load_file(tmp_path / "runs" / "rgb-continuous" / "model" / "model.safetensors")
    assert all(torch.equal(final[k], v) for k, v in stage1_weights.items() if k.split(".")[0] in STAGE1_PARTS)
    lr = torch.rand(1, 3, 8, 8)
    out = model(lr, seeds=[1], scale=2.6)
    assert out.shape == (1, 3, 21, 21)
    torch.testing.assert_close(out, model(lr, seeds=[1], scale=2.6))
    regression = ["fit", "--config", str(recipe("rgb-continuous-regression", tmp_path)), *shrink, *tiny]
    assert main(regression) == 0
    baseline = satsr.load(tmp_path / "runs" / "rgb-continuous-regression" / "model")
    assert baseline.continuous and not baseline.stochastic


def test_reconstruction_terms_weigh_lpips_and_the_generator_loss() -> None:
    torch.manual_seed(0)
    terms = ReconstructionTerms(perceptual_weight=0.5, adv_weight=0.1)
    _, hr = batch(scale=4.0)
    total, same = terms.generator(hr.clone(), hr, adversarial=False)
    assert set(same) == {"lpips"} and same["lpips"].item() == pytest.approx(0.0, abs=1e-6)
    sr = (hr + 0.1 * torch.randn_like(hr)).clamp(0, 1).requires_grad_(True)
    total, values = terms.generator(sr, hr, adversarial=True)
    assert set(values) == {"lpips", "g_adv"} and values["lpips"] > 0.01
    torch.testing.assert_close(total, 0.5 * values["lpips"] + 0.1 * values["g_adv"])
    total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert terms.discriminator_loss(sr, hr).item() > 0
    terms.train()
    assert terms.lpips is not None and not terms.lpips.training  # a fixed metric, never in train mode
    assert ReconstructionTerms().lpips is None  # no perceptual weight, no LPIPS network
    with pytest.raises(ValueError, match="RGB"):
        ReconstructionTerms(in_channels=4, perceptual_weight=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        ReconstructionTerms(adv_weight=-1.0)
    with pytest.raises(ValueError, match="at least 31 px"):
        terms.generator(hr[..., :24, :24], hr[..., :24, :24], adversarial=False)


@pytest.mark.parametrize("adv_weight", [0.0, 1e-2])
def test_the_regression_baseline_can_train_under_stage_1s_losses(tmp_path: Path, adv_weight: float) -> None:
    torch.manual_seed(0)
    module = ContinuousRegressionModule(network=TINY, lr=1e-2, perceptual_weight=0.5, adv_weight=adv_weight)
    lr, hr = batch(scale=4.0)
    disc_before = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer = fit(module, (lr, hr), 6, tmp_path)
    assert "train/lpips" in trainer.callback_metrics
    assert ("train/d_loss" in trainer.callback_metrics) == (adv_weight > 0)
    moved = [
        not torch.equal(a, b) for a, b in zip(disc_before, module.discriminator.parameters(), strict=True)
    ]
    assert any(moved) == (adv_weight > 0)  # no adversarial weight, no discriminator steps


def test_stage1_trains_under_bf16_autocast(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = PriorAutoencoderModule(network=TINY, lr=1e-2, adv_start=0, perceptual_weight=0.1)
    lr, hr = batch(scale=4.0)
    with torch.no_grad():
        reference = module.predict(lr, hr)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = module.predict(lr, hr)
    assert (low.float() - reference).abs().max() < 0.05  # bf16 rounding, not another result
    trainer = L.Trainer(
        max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path, precision="bf16-mixed",
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(lr, hr), batch_size=2))
    assert torch.isfinite(trainer.callback_metrics["train/l1"]) and "train/d_loss" in trainer.callback_metrics


def test_validation_scores_lpips_where_alexnet_can(tmp_path: Path) -> None:
    module = ContinuousRegressionModule(network=TINY)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    for scale, scored in ((4.0, True), (2.5, False)):  # 32 px HR, then 20 px (too small for AlexNet)
        lr, hr = batch(scale=scale)
        metrics = trainer.validate(module, DataLoader(TensorDataset(lr, hr), batch_size=2), verbose=False)[0]
        assert ("val/lpips" in metrics) == scored and "val/psnr" in metrics
        if scored:
            assert 0 < metrics["val/lpips"] < 1 and 0 < metrics["val/lpips_bicubic"] < 1
