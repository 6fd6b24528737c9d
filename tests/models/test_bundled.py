from pathlib import Path

import torch
import torch.nn.functional as F

import satsr
from satsr.data.degradation import wald_degrade
from satsr.evaluation import psnr
from satsr.io.raster import read_raster
from satsr.models.registry import bundled_models

SAMPLE = Path(satsr.__file__).parent / "sample" / "s2_l1c_sample_256.tif"


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
