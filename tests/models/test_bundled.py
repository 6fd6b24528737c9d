from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import satsr
from satsr.data.degradation import wald_degrade
from satsr.evaluation import psnr
from satsr.io.raster import read_raster
from satsr.models.consistency import sensor_degradation
from satsr.models.registry import bundled_models
from satsr.nn.lpips import LPIPS
from satsr.training.autoencoder import lpips_input

SAMPLE = Path(satsr.__file__).parent / "sample" / "s2_l1c_sample_256.tif"
RGB = (2, 1, 0)  # B04, B03, B02


def test_fast_model_is_bundled_with_a_card() -> None:
    folder = bundled_models()["s2-rgbn-x4-fast"]
    assert (folder / "MODEL_CARD.md").is_file()
    model = satsr.load("s2-rgbn-x4-fast")
    assert model.scale == 4 and model.bands == ("B02", "B03", "B04", "B08")


def test_fast_model_beats_bicubic_on_the_held_out_sample() -> None:
    """The sample lies in the validation rows: Wald-degrade it, super-resolve, compare with bicubic."""
    reflectance, valid, _ = read_raster(SAMPLE)
    assert valid.all()
    hr = torch.from_numpy(reflectance)[None]
    lr = wald_degrade(hr, 4, ("B02", "B03", "B04", "B08"))
    sr = satsr.load("s2-rgbn-x4-fast")(lr)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert isinstance(sr, torch.Tensor)
    assert float(psnr(sr, hr)[0]) > float(psnr(bicubic, hr)[0]) + 0.3


def test_ldm_is_bundled_seeded_lr_consistent_and_perceptually_better_than_bicubic() -> None:
    """On the held-out sample: a fixed seed gives a fixed sample, the sample's sensor-model
    degradation matches the LR, and LPIPS beats bicubic's clearly."""
    assert (bundled_models()["s2-rgbn-x4-ldm"] / "MODEL_CARD.md").is_file()
    model = satsr.load("s2-rgbn-x4-ldm")
    assert model.stochastic and model.default_steps == 4 and model.scale == 4
    reflectance, _, _ = read_raster(SAMPLE)
    hr = torch.from_numpy(reflectance)[None, :, :128, :128]
    lr = wald_degrade(hr, 4, model.bands)
    sr = model(lr, seeds=[7])
    assert isinstance(sr, torch.Tensor) and sr.shape == hr.shape
    torch.testing.assert_close(model(lr, seeds=[7]), sr)
    assert not torch.allclose(model(lr, seeds=[8]), sr)
    degraded = sensor_degradation(4, model.bands)(sr)
    assert (degraded - lr).abs().mean() < 0.2 * (sr - hr).abs().mean()
    lpips = LPIPS()
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert float(lpips(lpips_input(sr, RGB), lpips_input(hr, RGB))) < 0.8 * float(
        lpips(lpips_input(bicubic, RGB), lpips_input(hr, RGB))
    )


def test_fusion_model_is_bundled_and_fuses_revisits_of_the_sample_trusting_near_dates_more() -> None:
    """Two simulated revisits of the bundled sample: one image at the HR size, fixed by the seed, near the
    truth; dated far from each other, the second weighs less and the image changes."""
    from satsr.data.revisits import RevisitSimulator

    assert (bundled_models()["s2-rgbn-x4-fusion"] / "MODEL_CARD.md").is_file()
    model = satsr.load("s2-rgbn-x4-fusion")
    assert model.stochastic and model.scale == 4 and model.fusion_config.method == "anchored"
    reflectance, _, _ = read_raster(SAMPLE)
    hr = torch.from_numpy(reflectance)[:, :64, :64]
    simulator = RevisitSimulator(cloud_probability=0.0)
    lrs = torch.stack([simulator.simulate(hr, dt, torch.Generator().manual_seed(i))[0]
                       for i, dt in enumerate((-5.0, 30.0))]).numpy()  # fmt: skip
    fused = model.fuse(lrs, [-5.0, 30.0], seed=1)
    assert fused.shape == (4, 64, 64) and np.array_equal(fused, model.fuse(lrs, [-5.0, 30.0], seed=1))
    assert not np.allclose(fused, model.fuse(lrs, [-5.0, 300.0], seed=1))
    assert np.abs(fused - hr.numpy()).mean() < 0.05


def test_rgb_continuous_is_bundled_serves_real_scales_and_beats_bicubic_perceptually() -> None:
    """The sample's B04 B03 B02 as an RGB picture (reflectance x 3): any real scale gives
    round(side * scale) pixels, the seed fixes the prior, and LPIPS beats bicubic's at x2 and x4."""
    from satsr.data.degradation import bicubic_degrade

    assert (bundled_models()["rgb-continuous"] / "MODEL_CARD.md").is_file()
    model = satsr.load("rgb-continuous")
    assert model.continuous and model.stochastic and model.bands == ("red", "green", "blue")
    reflectance, _, _ = read_raster(SAMPLE)
    hr = (torch.from_numpy(reflectance)[list(RGB)][None, :, :128, :128] * 3).clamp(0, 1)
    odd = model(bicubic_degrade(hr, 4.0), seeds=[1], scale=2.6)
    assert isinstance(odd, torch.Tensor) and odd.shape == (1, 3, 83, 83)
    torch.testing.assert_close(model(bicubic_degrade(hr, 4.0), seeds=[1], scale=2.6), odd)
    lpips = LPIPS()
    for scale in (2.0, 4.0):
        lr = bicubic_degrade(hr, scale)
        sr = model(lr, seeds=[0], scale=scale)
        bicubic = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        assert isinstance(sr, torch.Tensor) and sr.shape == hr.shape
        assert float(lpips(sr * 2 - 1, hr * 2 - 1)) < 0.8 * float(lpips(bicubic * 2 - 1, hr * 2 - 1))
