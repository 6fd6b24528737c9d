"""Continuous-scale models in the pipeline: any real --scale, the scene grid kept, tiles on that grid."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from safetensors.torch import save_file

import satsr
from satsr.cli import main
from satsr.evaluation.methods import upscaler_method
from satsr.io.grid import RasterError
from satsr.models.continuous import ContinuousSR
from satsr.pipelines import upscale_file
from tests.conftest import tiny_continuous as tiny
from tests.conftest import write_geotiff

RGB = ["red", "green", "blue"]


def save_continuous(model: ContinuousSR, folder: Path, prior: bool) -> Path:
    from tests.conftest import TINY_CONTINUOUS as TINY

    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    config = {"architecture": "ContinuousSR", "bands": RGB, "summary": "tiny", **TINY, "prior": prior}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(params=[False, True], ids=["regression", "prior"])
def continuous_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return save_continuous(tiny(prior=request.param), tmp_path / "tiny-continuous", request.param)


@pytest.fixture
def rgb_tif(tmp_path: Path) -> Path:
    yy, xx = np.mgrid[0:30, 0:40]
    base = 120 + 60 * np.sin(xx / 4) * np.cos(yy / 5)
    pixels = (base[None] + 20 * np.arange(3)[:, None, None]).astype(np.uint8)
    return write_geotiff(tmp_path / "rgb.tif", pixels, names=RGB)


def test_a_real_scale_gives_round_h_s_pixels_on_the_same_bounds(continuous_dir: Path, rgb_tif: Path) -> None:
    out = upscale_file(
        rgb_tif, rgb_tif.with_name("x26.tif"), continuous_dir, scale=2.6, tile_size=16, overlap=6
    )
    with rasterio.open(rgb_tif) as src, rasterio.open(out) as dst:
        assert (dst.height, dst.width) == (78, 104) and dst.dtypes[0] == "uint8"
        assert dst.bounds == pytest.approx(src.bounds) and dst.crs == src.crs
        assert dst.res == pytest.approx((10 / 2.6, 10 / 2.6)) and dst.tags()["SATSR_SCALE"] == "2.6"
        assert dst.read().std() > 0
    item = json.loads(out.with_suffix(".json").read_text())
    assert item["properties"]["satsr:scale"] == 2.6


@pytest.mark.parametrize(("height", "width"), [(30, 30), (18, 40)], ids=["square", "narrow"])
def test_one_window_equals_the_model_on_the_whole_image(
    continuous_dir: Path, tmp_path: Path, height: int, width: int
) -> None:
    """Pictures are read as DN / 255; the output is the model's regular grid, to one DN (a window
    of exactly the image: no padding, also of the short side of a narrow image)."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = 120 + 60 * np.sin(xx / 4)[None] * np.cos(yy / 5)[None] + 20 * np.arange(3)[:, None, None]
    rgb_tif = write_geotiff(tmp_path / "picture.tif", pixels.astype(np.uint8), names=RGB)
    out = upscale_file(rgb_tif, rgb_tif.with_name("x34.tif"), continuous_dir, scale=3.4, seed=5)
    model = satsr.load(continuous_dir)
    with rasterio.open(rgb_tif) as src, rasterio.open(out) as dst:
        lr = torch.from_numpy(src.read().astype(np.float32) / 255)
        written = dst.read().astype(np.float32)
    seeds = [satsr.diffusion.noise.mix_seed(5, 0)]
    expected = np.asarray(model(lr[None], seeds=seeds, origins=[(0, 0)], scale=3.4))[0] * 255
    assert written.shape == expected.shape == (3, round(height * 3.4), round(width * 3.4))
    assert np.abs(written - expected).max() <= 1.0


def test_the_evaluation_harness_runs_a_small_picture_as_satsr_upscale_does(
    continuous_dir: Path, tmp_path: Path
) -> None:
    """An LR smaller than the tile is one window of its own size in the harness too (it was padded up
    to the tile, which changed a GroupNorm model's output: 0.4-1 dB on aerial pictures at x4)."""
    yy, xx = np.mgrid[0:30, 0:30]
    pixels = 120 + 60 * np.sin(xx / 4)[None] * np.cos(yy / 5)[None] + 20 * np.arange(3)[:, None, None]
    rgb_tif = write_geotiff(tmp_path / "square.tif", pixels.astype(np.uint8), names=RGB)
    out = upscale_file(rgb_tif, rgb_tif.with_name("x34.tif"), continuous_dir, scale=3.4, seed=5)
    with rasterio.open(rgb_tif) as src, rasterio.open(out) as dst:
        lr = src.read().astype(np.float32) / 255
        written = dst.read().astype(np.float32)
    harness = upscaler_method(satsr.load(continuous_dir), seed=5, scale=3.4)(lr) * 255
    assert harness.shape == written.shape == (3, 102, 102)
    assert np.abs(harness - written).max() <= 1.0


def test_scales_out_of_range_are_refused_and_beyond_training_warned(
    continuous_dir: Path, rgb_tif: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for bad in (0.5, 12.0, float("nan")):
        with pytest.raises(ValueError, match=r"--scale must be a number in \[1, 10\]"):
            upscale_file(rgb_tif, rgb_tif.with_name("bad.tif"), continuous_dir, scale=bad)
    assert not rgb_tif.with_name("bad.tif").exists()
    with caplog.at_level(logging.WARNING):
        upscale_file(rgb_tif, rgb_tif.with_name("x9.tif"), continuous_dir, scale=9.0, tile_size=16, overlap=4)
    assert caplog.text.count("trained up to x8") == 1


def test_fixed_scale_models_still_refuse_other_scales(tiny_model_dir: Path, smooth_tif: Path) -> None:
    with pytest.raises(RasterError, match="supports scale 4 only"):
        upscale_file(smooth_tif, smooth_tif.with_name("o.tif"), tiny_model_dir, scale=2.6)


def test_cli_upscale_at_any_scale(continuous_dir: Path, rgb_tif: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.tif"
    assert main(["upscale", str(rgb_tif), str(out), "--model", str(continuous_dir), "--scale", "1.7",
                 "--tile-size", "16", "--overlap", "4"]) == 0  # fmt: skip
    with rasterio.open(out) as dst:
        assert (dst.height, dst.width) == (51, 68)


def test_the_prior_is_fixed_by_the_seed(tmp_path: Path, rgb_tif: Path) -> None:
    folder = save_continuous(tiny(prior=True), tmp_path / "prior", True)
    read = []
    for name, seed in (("a.tif", 1), ("b.tif", 1), ("c.tif", 2)):
        out = upscale_file(rgb_tif, tmp_path / name, folder, scale=2.0, tile_size=16, overlap=4, seed=seed)
        with rasterio.open(out) as dst:
            read.append(dst.read())
    assert np.array_equal(read[0], read[1]) and not np.array_equal(read[0], read[2])


def test_upscale_dataarray_serves_a_real_scale_as_upscale_file_does(
    continuous_dir: Path, rgb_tif: Path, tmp_path: Path
) -> None:
    rioxarray = pytest.importorskip("rioxarray")
    da = rioxarray.open_rasterio(rgb_tif).astype(np.float32) / 255  # the file pipeline reads DN / 255
    kwargs = {"scale": 2.6, "tile_size": 16, "overlap": 6, "seed": 3}
    sr = satsr.upscale_dataarray(da, str(continuous_dir), **kwargs)  # type: ignore[arg-type]
    out = upscale_file(rgb_tif, tmp_path / "file.tif", continuous_dir, **kwargs)  # type: ignore[arg-type]
    with rasterio.open(out) as dst:
        written, bounds, resolution = dst.read().astype(np.float32), dst.bounds, dst.res
        centres_x = [dst.xy(0, col)[0] for col in range(dst.width)]
        centres_y = [dst.xy(row, 0)[1] for row in range(dst.height)]
    assert sr.shape == written.shape == (3, 78, 104)
    assert np.abs(sr.values * 255 - written).max() <= 1.0  # the file holds whole DN
    np.testing.assert_allclose(sr.rio.bounds(), tuple(bounds))
    np.testing.assert_allclose(np.abs(sr.rio.resolution()), resolution)
    np.testing.assert_allclose(sr["x"].values, centres_x)
    np.testing.assert_allclose(sr["y"].values, centres_y)
    values = da.values.copy()
    values[:, 5, 7] = np.nan  # masked: the HR pixels whose centres fall in LR pixel (5, 7)
    masked = satsr.upscale_dataarray(da.copy(data=values), str(continuous_dir), **kwargs)  # type: ignore[arg-type]
    rows = np.flatnonzero((2 * np.arange(78) + 1) * 30 // (2 * 78) == 5)
    cols = np.flatnonzero((2 * np.arange(104) + 1) * 40 // (2 * 104) == 7)
    nan = np.isnan(masked.values).all(axis=0)
    assert nan[np.ix_(rows, cols)].all() and nan.sum() == len(rows) * len(cols) > 0
