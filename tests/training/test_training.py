"""LightningCLI training on tiny generated scenes: datamodule, fit, export round trip, resumption."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

import satsr
from satsr.data import datamodules
from satsr.data.datamodules import SRDataModule
from satsr.data.sources import Scene, Split
from satsr.io.bands import S2_RGBN
from satsr.training.callbacks import ExportBundled, averaged_module
from satsr.training.cli import main
from satsr.training.regression import SRRegression

TINY_MODEL = {"scale": 2, "channels": 4, "num_blocks": 1}
TINY_DATA = {"lr_patch": 8, "batch_size": 2, "train_length": 4, "val_length": 2, "num_workers": 0}


def smooth_scene(name: str, seed: int, size: int = 48) -> Scene:
    """Smooth random reflectance-like field, four bands."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phases = rng.uniform(0, 6, size=(4, 2)).astype(np.float32)
    bands = [0.1 + 0.05 * np.sin(xx / 5 + p[0]) * np.cos(yy / 7 + p[1]) for p in phases]
    pixels = np.stack(bands) + 0.01 * rng.random((4, size, size), dtype=np.float32)
    return Scene(name, pixels.astype(np.float32), S2_RGBN)


@pytest.fixture(autouse=True)
def tiny_scenes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Scene]]:
    scenes = {
        "train": [smooth_scene("train0", 0), smooth_scene("train1", 1, 56)],
        "val": [smooth_scene("val", 2)],
        "test": [smooth_scene("test", 3)],
    }

    def fake(split: Split, root: Path | None = None) -> list[Scene]:
        return scenes[split]

    monkeypatch.setattr(datamodules, "s2_rgbn_scenes", fake)
    return scenes


def tiny_trainer(tmp_path: Path, max_steps: int, callbacks: list[L.Callback]) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=callbacks, default_root_dir=tmp_path, num_sanity_val_steps=0,
    )  # fmt: skip


def test_datamodule_trains_on_new_patches_and_validates_on_fixed_ones() -> None:
    data = SRDataModule(scale=2, **TINY_DATA)  # type: ignore[arg-type]
    data.setup("fit")
    lr, hr = next(iter(data.train_dataloader()))
    assert lr.shape == (2, 4, 8, 8) and hr.shape == (2, 4, 16, 16)
    loader = data.train_dataloader()
    first = torch.cat([hr for _, hr in loader])
    loader.sampler.set_epoch(1)  # type: ignore[attr-defined]
    second = torch.cat([hr for _, hr in loader])
    assert not torch.equal(first, second)
    val_a = torch.cat([hr for _, hr in data.val_dataloader()])
    other = SRDataModule(scale=2, **{**TINY_DATA, "seed": 7})  # type: ignore[arg-type]
    other.setup("validate")
    val_b = torch.cat([hr for _, hr in other.val_dataloader()])
    torch.testing.assert_close(val_a, val_b)  # the training seed does not move the validation patches


def test_s2_needs_an_integer_scale() -> None:
    with pytest.raises(ValueError, match="integer scale"):
        SRDataModule(scale=2.5)


def test_band_statistics_are_those_of_the_training_pixels(tiny_scenes: dict[str, list[Scene]]) -> None:
    mean, std = SRDataModule().band_statistics()
    pixels = np.concatenate([s.pixels.reshape(4, -1) for s in tiny_scenes["train"]], axis=1)
    np.testing.assert_allclose(mean, pixels.mean(1), atol=1e-5)
    np.testing.assert_allclose(std, pixels.std(1), atol=1e-5)


def test_fit_exports_a_model_that_satsr_load_reproduces(tmp_path: Path) -> None:
    module = SRRegression(**TINY_MODEL)  # type: ignore[arg-type]
    out = tmp_path / "model"
    trainer = tiny_trainer(tmp_path, 3, [ExportBundled(out, summary="tiny")])
    trainer.fit(module, datamodule=SRDataModule(scale=2, **TINY_DATA))  # type: ignore[arg-type]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "ResidualSR" and config["bands"] == list(S2_RGBN)
    assert config["summary"] == "tiny" and config["band_mean"] is not None and config["channels"] == 4
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 3 and "val/psnr" in log["metrics"] and log["wall_minutes"] > 0
    upscaler = satsr.load(out)
    lr = 0.1 + 0.05 * torch.rand(2, 4, 8, 8)
    with torch.no_grad():
        expected = module.eval()(lr)
    torch.testing.assert_close(upscaler(lr), expected)
    assert upscaler.scale == 2 and not torch.allclose(expected, SRRegression(**TINY_MODEL).eval()(lr))  # type: ignore[arg-type]


def test_training_reduces_the_loss(tmp_path: Path) -> None:
    """A few steps on one repeated batch overfit it: the L1 loss goes down."""
    torch.manual_seed(0)
    module = SRRegression(**TINY_MODEL, lr=1e-2)  # type: ignore[arg-type]
    data = SRDataModule(scale=2, **TINY_DATA)  # type: ignore[arg-type]
    data.setup("fit")
    module.set_band_statistics(*data.band_statistics())
    lr, hr = next(iter(data.train_dataloader()))
    before = torch.nn.functional.l1_loss(module(lr), hr).item()
    trainer = L.Trainer(max_steps=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(lr, hr), batch_size=len(lr)))
    assert torch.nn.functional.l1_loss(module(lr), hr).item() < 0.7 * before


def write_config(tmp_path: Path) -> Path:
    config = {
        "trainer": {
            "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0, "default_root_dir": str(tmp_path),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(tmp_path / "checkpoints"), "save_last": True}},
                {"class_path": "satsr.training.callbacks.ExportBundled",
                 "init_args": {"out_dir": str(tmp_path / "model"), "summary": "tiny"}},
            ],
        },
        "model": {"class_path": "satsr.training.regression.SRRegression", "init_args": TINY_MODEL},
        "data": {"scale": TINY_MODEL["scale"], **TINY_DATA},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_cli_fit_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2"]) == 0
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2
    first = json.loads((tmp_path / "model" / "config.json").read_text())
    args = ["fit", "--config", str(config), "--trainer.max_steps", "4", "--ckpt_path", str(last)]
    assert main(args) == 0
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 4
    assert checkpoint["hyper_parameters"]["band_mean"] == first["band_mean"]
    assert json.loads((tmp_path / "model" / "train_log.json").read_text())["steps"] == 4
    assert main(["validate", "--config", str(config), "--ckpt_path", "last"]) == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--data.scale", "3", "scale=2 but the data has scale=3"),
        ("--model.init_args.in_channels", "3", "4 bands"),
    ],
)
def test_cli_refuses_a_model_that_does_not_match_the_data(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    config = write_config(tmp_path)
    with pytest.raises(ValueError, match=message):
        main(["fit", "--config", str(config), option, value])


def aerial_folder(root: Path, count: int = 10) -> Path:
    """``root/aerial/set/class/*.jpg``: the layout ``sources.aerial_rgb_images`` splits 70/15/15."""
    folder = root / "aerial" / "set" / "class"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        yy, xx = np.mgrid[0:40, 0:48]
        rgb = np.stack([120 + 90 * np.sin(xx / 5 + i + c) * np.cos(yy / 7) for c in range(3)], axis=-1)
        Image.fromarray((rgb + rng.integers(0, 10, rgb.shape)).astype(np.uint8)).save(folder / f"{i}.jpg")
    return root


def test_cli_trains_on_aerial_pictures_with_three_bands(tmp_path: Path) -> None:
    root = aerial_folder(tmp_path / "data")
    args = [
        "fit",
        "--config",
        str(write_config(tmp_path)),
        "--trainer.max_steps",
        "2",
        "--data.source",
        "aerial",
        "--model.init_args.in_channels",
        "3",
    ]
    assert main([*args, "--data.data_dir", str(root)]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["in_channels"] == 3 and config["bands"] == ["red", "green", "blue"]
    assert all(0.0 < m < 1.0 for m in config["band_mean"]) and len(config["band_std"]) == 3
    data = SRDataModule("aerial", 2.5, data_dir=root, **TINY_DATA)  # type: ignore[arg-type]
    data.setup("validate")
    lr, hr = next(iter(data.val_dataloader()))  # a float scale: HR 20 px for LR 8 px
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 20, 20)


def test_exports_carry_the_averaged_weights_when_training_keeps_an_ema(tmp_path: Path) -> None:
    out = tmp_path / "model"
    seen: list[tuple[bool, bool]] = []

    class Check(L.Callback):
        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            exported = load_file(out / "model.safetensors")
            ema = averaged_module(trainer, pl_module).network.state_dict()  # type: ignore[union-attr]
            raw = pl_module.network.state_dict()  # type: ignore[union-attr]
            same = all(torch.equal(exported[k], ema[k]) for k in exported)
            differs = any(not torch.equal(exported[k], raw[k]) for k in exported)
            seen.append((same, differs))

    callbacks = [ExportBundled(out, every_validation=True), Check(), EMAWeightAveraging(decay=0.5)]
    trainer = tiny_trainer(tmp_path, 4, callbacks)
    trainer.fit(SRRegression(**TINY_MODEL), datamodule=SRDataModule(scale=2, **TINY_DATA))  # type: ignore[arg-type]
    assert seen and all(same and differs for same, differs in seen)


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_trains_and_exports_once(tmp_path: Path) -> None:
    """`satsr train` under Lightning's DDP strategy (2 processes on the CPU, gloo): as on several GPUs."""
    root = aerial_folder(tmp_path / "data")
    satsr_cli = Path(sys.executable).with_name("satsr")
    args = [
        str(satsr_cli), "train", "fit", "--config", str(write_config(tmp_path)), "--trainer.max_steps", "3",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--data.source", "aerial", "--data.data_dir", str(root), "--model.init_args.in_channels", "3",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world_size=2" in done.stderr or "distributed_backend=gloo" in done.stderr
    log = json.loads((tmp_path / "model" / "train_log.json").read_text())
    assert log["steps"] == 3
    assert satsr.load(tmp_path / "model").bands == ("red", "green", "blue")


def bundled_recipe(name: str, tmp_path: Path) -> Path:
    """``configs/NAME.yaml`` with its runs/ paths moved under ``tmp_path``."""
    text = (Path(__file__).parents[2] / "configs" / f"{name}.yaml").read_text()
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("runs/", f"{tmp_path}/runs/"))
    return path


TINY_RUN = [
    "--trainer.max_steps", "2", "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false", "--data.lr_patch", "4", "--data.batch_size", "2",
    "--data.train_length", "4", "--data.val_length", "2", "--data.num_workers", "0",
]  # fmt: skip
TINY_UNET = '{"latent_channels": 4, "cond_channels": 8, "channels": [8], "num_res_blocks": 1}'
TINY_S2D_UNET = '{"latent_channels": 64, "cond_channels": 68, "channels": [8], "num_res_blocks": 1}'


def test_the_ldm_recipes_train_and_export_loadable_models(tmp_path: Path, tiny_model_dir: Path) -> None:
    """configs/s2-rgbn-x4-ldm.yaml (lossless first stage) and, for a KL first stage, configs/s2-rgbn-ae.yaml
    before it, shrunk: as `satsr train` runs them."""
    ldm = [
        "fit", "--config", str(bundled_recipe("s2-rgbn-x4-ldm", tmp_path)), *TINY_RUN,
        "--model.init_args.reference_dir", str(tiny_model_dir), "--model.init_args.default_steps", "2",
        "--model.init_args.unet", TINY_S2D_UNET,
    ]  # fmt: skip
    assert main(ldm) == 0
    folder = tmp_path / "runs" / "s2-rgbn-x4-ldm" / "model"
    assert json.loads((folder / "config.json").read_text())["autoencoder"]["architecture"] == "SpaceToDepth"
    model = satsr.load(folder)
    assert model.stochastic and model.default_steps == 2 and model.scale == 4
    lr = 0.1 + 0.05 * torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(model(lr, seeds=[3]), model(lr, seeds=[3]))
    assert not torch.allclose(model(lr, seeds=[3]), model(lr, seeds=[4]))
    ae = ["fit", "--config", str(bundled_recipe("s2-rgbn-ae", tmp_path)), *TINY_RUN]
    # LPIPS (AlexNet) needs larger pictures than these 16 px patches.
    assert main([*ae, "--model.init_args.channels", "[4, 4, 4]", "--model.init_args.lpips_weight", "0"]) == 0
    ae_dir = tmp_path / "runs" / "s2-rgbn-ae" / "model"
    assert json.loads((ae_dir / "config.json").read_text())["architecture"] == "KLAutoencoder"
    kl = [*ldm[:-2], "--model.init_args.unet", TINY_UNET, "--model.init_args.first_stage", "null",
          "--model.init_args.autoencoder_dir", str(ae_dir)]  # fmt: skip
    assert main(kl) == 0
    assert satsr.load(folder)(lr, seeds=[3]).shape == (1, 4, 32, 32)


def test_revisit_batches_carry_dates_and_cloud_masks() -> None:
    data = SRDataModule(source="revisits", scale=4, **{**TINY_DATA, "lr_patch": 4})  # type: ignore[arg-type]
    data.setup("fit")
    lr, hr, dt, clear = next(iter(data.train_dataloader()))
    assert lr.shape == (2, 4, 4, 4) and hr.shape == (2, 4, 16, 16) and dt.shape == (2,)
    assert clear.shape == (2, 4, 4) and clear.dtype == torch.bool and (dt.abs() <= 180).all()
    val = [torch.cat(t) for t in zip(*data.val_dataloader(), strict=True)]
    again = [torch.cat(t) for t in zip(*data.val_dataloader(), strict=True)]
    for a, b in zip(val, again, strict=True):
        assert torch.equal(a, b)


def test_fine_tuning_starts_from_the_saved_model_and_learns_only_where_it_is_clear(tmp_path: Path) -> None:
    from tests.conftest import TINY_LDM as TINY
    from tests.conftest import save_ldm, tiny_ldm

    from satsr.training.ldm import LatentDiffusionModule

    saved = save_ldm(tiny_ldm(), tmp_path / "ldm")
    unet = {**TINY["unet"], "time_conditioning": True}  # type: ignore[dict-item]
    module = LatentDiffusionModule(None, unet, init_dir=str(saved), default_steps=3)
    lr = 0.1 + 0.05 * torch.rand(2, 4, 8, 8)
    with torch.no_grad():  # the dt embedding starts at zero: the saved model's samples, whatever dt
        torch.testing.assert_close(module.model.sample(lr, [1, 2]), tiny_ldm().sample(lr, [1, 2]))
        torch.testing.assert_close(
            module.model.fuse(lr[:1], [40.0], seed=1, steps=3),
            tiny_ldm().fuse(lr[:1], [0.0], seed=1, steps=3),
        )
    hr = torch.rand(2, 4, 32, 32) * 0.3
    dt = torch.tensor([10.0, -30.0])
    cloudy = torch.zeros(2, 8, 8, dtype=torch.bool)
    torch.manual_seed(0)
    loss = module.training_step((lr, hr, dt, cloudy), 0)
    assert loss.item() == 0.0  # nothing clear: nothing to learn from
    torch.manual_seed(0)
    loss = module.training_step((lr, hr, dt, ~cloudy), 0)
    loss.backward()
    grad = module.model.precond.net.dt_embed.last.weight.grad  # type: ignore[union-attr]
    assert loss.item() > 0 and grad is not None and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="init_dir supplies the autoencoder"):
        LatentDiffusionModule(str(saved), unet, init_dir=str(saved))
    with pytest.raises(ValueError, match="UNet weights do not fit"):
        LatentDiffusionModule(None, {**unet, "channels": [8, 8]}, init_dir=str(saved))


def test_the_fusion_recipe_fine_tunes_a_saved_model_into_a_time_aware_one(tmp_path: Path) -> None:
    """configs/s2-rgbn-x4-fusion.yaml, shrunk, from a tiny saved latent diffusion model."""
    from tests.conftest import TINY_LDM as TINY
    from tests.conftest import save_ldm, tiny_ldm

    saved = save_ldm(tiny_ldm(), tmp_path / "ldm")
    unet = json.dumps({**TINY["unet"], "time_conditioning": True})  # type: ignore[dict-item]
    args = [
        "fit", "--config", str(bundled_recipe("s2-rgbn-x4-fusion", tmp_path)), *TINY_RUN,
        "--model.init_args.init_dir", str(saved), "--model.init_args.unet", unet,
        "--model.init_args.default_steps", "2",
    ]  # fmt: skip
    assert main(args) == 0
    model = satsr.load(tmp_path / "runs" / "s2-rgbn-x4-fusion" / "model")
    assert model.network.time_conditioned  # type: ignore[union-attr]
    lrs = 0.1 + 0.05 * torch.rand(2, 4, 8, 8)
    fused = model.network.fuse(lrs, [0.0, 12.0], seed=0, steps=2)  # type: ignore[operator]
    assert fused.shape == (1, 4, 32, 32) and torch.isfinite(fused).all()


def test_a_lossless_first_stage_needs_no_autoencoder_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.conftest import SPACE_TO_DEPTH

    from satsr.training.ldm import LatentDiffusionModule

    reference = json.loads((tiny_model_dir / "config.json").read_text())
    reference |= {"band_mean": [0.1, 0.09, 0.08, 0.2], "band_std": [0.03, 0.03, 0.04, 0.1]}
    (tiny_model_dir / "config.json").write_text(json.dumps(reference))
    module = LatentDiffusionModule(
        None, SPACE_TO_DEPTH["unet"], str(tiny_model_dir), first_stage={"architecture": "SpaceToDepth"},
        default_steps=2, default_detail=0.5, sampler="euler",
    )  # fmt: skip
    codec = module.model.autoencoder
    # The first stage standardises with the reference's band statistics.
    assert module.config["autoencoder"]["band_std"] == reference["band_std"]
    torch.testing.assert_close(codec.band_mean.flatten(), torch.tensor(reference["band_mean"]))
    assert module.model.detail == 0.5 and module.model.sampler == "euler"
    hr = 0.1 + 0.2 * torch.rand(2, 4, 32, 32)
    torch.testing.assert_close(codec.decode_latent(codec.encode_latent(hr)), hr)
    lr = 0.1 + 0.05 * torch.rand(2, 4, 8, 8)
    loss = module.training_step((lr, hr), 0)
    loss.backward()
    assert loss.item() > 0 and all(p.grad is None for p in module.model.reference.parameters())  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="give autoencoder_dir"):
        LatentDiffusionModule(None, SPACE_TO_DEPTH["unet"], str(tiny_model_dir))


def test_regression_continues_from_exported_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config |= {"band_mean": [0.1, 0.09, 0.08, 0.2], "band_std": [0.03, 0.03, 0.04, 0.1]}
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    shape = {k: config[k] for k in ("in_channels", "scale", "channels", "num_blocks")}
    module = SRRegression(**shape, init_dir=str(tiny_model_dir))
    lr = 0.1 + 0.05 * torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(lr), satsr.load(tiny_model_dir).network(lr))
    assert module.has_band_statistics() and module.hparams["band_std"] == config["band_std"]
    with pytest.raises(ValueError, match="not of the model arguments"):
        SRRegression(**{**shape, "num_blocks": 2}, init_dir=str(tiny_model_dir))
