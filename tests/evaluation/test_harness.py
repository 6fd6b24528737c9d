"""The evaluation harness: pair loading (real / Wald / bicubic), the benchmark run and its report."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tests.conftest import write_geotiff

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.evaluation.harness import (
    BICUBIC,
    EvalPair,
    bicubic_upsample,
    evaluate,
    load_pairs,
    upscaler_method,
)
from satsr.io.bands import S2_RGBN
from satsr.models.registry import load
from satsr.nn.lpips import lpips

S2_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")


def _dn(bands: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint16 L1C-like DN with structure at several scales."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = 900 + 300 * np.sin(xx / 5) * np.cos(yy / 4) + 150 * np.sin((xx + yy) / 2.3)
    noise = np.random.default_rng(seed).integers(0, 120, size=(bands, height, width))
    return (base[None] + noise + np.arange(bands)[:, None, None] * 150).astype(np.uint16)


def _png(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 80 * np.sin(xx / 3)[None] * np.cos(yy / 5)[None] + rng.integers(-30, 30, (3, height, width))
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8).transpose(1, 2, 0)).save(path)
    return path


@pytest.fixture
def s2_file(tmp_path: Path) -> Path:
    return write_geotiff(tmp_path / "scene.tif", _dn(4, 64, 72))


def test_wald_pairs_whole_image(s2_file: Path) -> None:
    (pair,) = load_pairs(s2_file, 4)
    assert pair.lr.shape == (4, 16, 18) and pair.hr.shape == (4, 64, 72)
    assert pair.degradation == "wald" and pair.bands == S2_RGBN
    expected_hr = _dn(4, 64, 72).astype(np.float32) / 10000
    np.testing.assert_allclose(pair.hr, expected_hr, rtol=1e-6)
    expected_lr = wald_degrade(torch.from_numpy(expected_hr)[None], 4, S2_RGBN)[0].numpy()
    np.testing.assert_allclose(pair.lr, expected_lr, atol=1e-6)


def test_crop_cuts_aligned_tiles_of_one_degradation(s2_file: Path) -> None:
    (whole,) = load_pairs(s2_file, 4)
    tiles = load_pairs(s2_file, 4, crop=32)
    assert len(tiles) == 2 * 2  # 64 x 72 HR holds 2 x 2 tiles of 32 px
    for tile in tiles:
        assert tile.hr.shape == (4, 32, 32) and tile.lr.shape == (4, 8, 8)
        top, left = (int(part[1:]) for part in tile.name.split("_")[-2:])
        np.testing.assert_array_equal(tile.hr, whole.hr[:, top : top + 32, left : left + 32])
        np.testing.assert_array_equal(
            tile.lr, whole.lr[:, top // 4 : top // 4 + 8, left // 4 : left // 4 + 8]
        )


@pytest.mark.parametrize(
    ("scale", "lr_size", "hr_size"), [(2.5, (20, 18), (50, 45)), (3.4, (14, 13), (48, 44))]
)
def test_rgb_pictures_non_integer_scale(tmp_path: Path, scale: float, lr_size: tuple, hr_size: tuple) -> None:
    path = _png(tmp_path / "aerial.png", 50, 47)
    (pair,) = load_pairs(path, scale)
    assert pair.degradation == "bicubic" and pair.bands == ("R", "G", "B")
    assert pair.lr.shape[1:] == lr_size and pair.hr.shape[1:] == hr_size
    assert hr_size == tuple(round(side * scale) for side in lr_size)
    picture = np.asarray(Image.open(path)).transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_allclose(pair.hr, picture[:, : hr_size[0], : hr_size[1]], atol=1e-6)
    expected_lr = bicubic_degrade(torch.from_numpy(pair.hr)[None], scale)[0].numpy()
    np.testing.assert_allclose(pair.lr, expected_lr, atol=1e-6)


def test_non_integer_crop_tiles(tmp_path: Path) -> None:
    pairs = load_pairs(_png(tmp_path / "a.png", 70, 70), 3.3, crop=33)
    assert len(pairs) == 4  # tiles of round(10 * 3.3) = 33 px: two per axis
    assert all(p.lr.shape[1:] == (10, 10) and p.hr.shape[1:] == (33, 33) for p in pairs)


def test_wald_needs_an_integer_scale(s2_file: Path) -> None:
    with pytest.raises(ValueError, match="integer"):
        load_pairs(s2_file, 2.5)
    assert load_pairs(s2_file, 2.5, degradation="bicubic")[0].degradation == "bicubic"


def test_band_sets_pick_matching_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "dsen2like"
    folder.mkdir()
    # no band descriptions: names come from the file names, as in shared/data/s2/dsen2_l1c
    write_geotiff(folder / "S2A_T33UUB_10m_B02_B03_B04_B08.tif", _dn(4, 64, 64), names=())
    write_geotiff(folder / "S2A_T33UUB_20m_B05_B06_B07_B8A_B11_B12.tif", _dn(6, 32, 32), names=())
    write_geotiff(folder / "S2A_T33UUB_60m_B01_B09.tif", _dn(2, 16, 16), names=())
    with caplog.at_level(logging.WARNING):
        pairs = load_pairs(folder, 4, bands=S2_RGBN)
    assert [p.bands for p in pairs] == [S2_RGBN]
    assert caplog.text.count("skipped") == 2 and "lacks bands" in caplog.text
    assert [p.bands for p in load_pairs(folder, 4)] == [S2_RGBN]  # first file fixes the count
    (twenty,) = load_pairs(folder, 2, bands=6)
    assert twenty.bands == S2_20M and twenty.hr.shape == (6, 32, 32)
    (red_nir,) = load_pairs(folder, 4, bands=["b8", "red"])
    np.testing.assert_allclose(red_nir.hr, pairs[0].hr[[3, 2]])


def test_real_pairs_layout(tmp_path: Path) -> None:
    hr_dn, lr_dn = _dn(4, 64, 64, seed=1), _dn(4, 16, 16, seed=2)
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    write_geotiff(tmp_path / "hr" / "a.tif", hr_dn)
    write_geotiff(tmp_path / "lr" / "a.tif", lr_dn)
    write_geotiff(tmp_path / "hr" / "orphan.tif", hr_dn)  # no LR: skipped
    (pair,) = load_pairs(tmp_path, 4)
    assert pair.degradation == "real" and pair.name == "a"
    np.testing.assert_allclose(pair.lr, lr_dn / 10000, rtol=1e-6)
    np.testing.assert_allclose(pair.hr, hr_dn / 10000, rtol=1e-6)
    assert len(load_pairs(tmp_path, 4, crop=32)) == 4
    with pytest.raises(ValueError, match="does not match"):
        load_pairs(tmp_path, 2)


def test_nodata_tiles_are_skipped(tmp_path: Path) -> None:
    dn = _dn(4, 128, 128)
    dn[:, 100:, 100:] = 0  # a nodata corner
    path = write_geotiff(tmp_path / "holes.tif", dn, nodata=0)
    pairs = load_pairs(path, 4, crop=32)
    # the 4 x 4 grid loses the corner tile and, through the blur margin, the tiles touching it
    assert len(pairs) == 16 - 4 and all(p.nodata_skipped == 4 for p in pairs)
    assert all(p.hr.min() > 0 for p in pairs)
    assert "y96_x96" not in {p.name for p in pairs}


def _oracle(pairs: list[EvalPair], noise: float = 1e-3):
    """A method that knows the HR of every LR (plus a little noise, so PSNR stays finite)."""
    lookup = {pair.lr.tobytes(): pair.hr for pair in pairs}
    rng = np.random.default_rng(0)
    return lambda lr: (
        lookup[lr.tobytes()] + rng.normal(0, noise, lookup[lr.tobytes()].shape).astype(np.float32)
    )


def _nearest(scale: int):
    return lambda lr: np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)


def test_evaluate_writes_report_with_bicubic_row(tmp_path: Path) -> None:
    pairs = load_pairs(write_geotiff(tmp_path / "s.tif", _dn(4, 96, 96)), 4, crop=48)
    out = tmp_path / "eval"
    result = evaluate({"oracle": _oracle(pairs), "nearest": _nearest(4)}, pairs, out, 4, fid=False, crops=2)
    assert json.loads((out / "metrics.json").read_text()) == result
    assert list(result["results"]) == [BICUBIC, "oracle", "nearest"]
    rows = result["results"]
    assert rows["oracle"]["psnr"] > rows[BICUBIC]["psnr"] + 10 > rows["nearest"]["psnr"] + 10
    assert rows["oracle"]["lpips"] < rows[BICUBIC]["lpips"]
    assert rows["nearest"]["grid"] > 0.5 > 0.1 > rows["oracle"]["grid"]  # edges on the LR grid, or not
    for metric in (
        "psnr",
        "ssim",
        "sam",
        "ergas",
        "lpips",
        "reflectance",
        "hallucination",
        "grid",
        "sec_per_mp",
    ):
        values = [rows[m][metric] for m in rows]
        assert all(math.isfinite(v) for v in values) and len(set(values)) == 3, metric
    assert all(rows[m]["fid"] is None for m in rows)
    assert len(result["per_image"]["oracle"]) == len(pairs) == 4
    meta = result["metadata"]
    assert meta["scale"] == 4 and meta["num_images"] == 4 and meta["degradation"] == ["wald"]
    assert meta["data"].endswith("s.tif") and meta["fid_patches"] is None
    report = (out / "report.md").read_text()
    assert "| bicubic |" in report and "| oracle |" in report and "FID was not computed" in report
    crops = sorted(out.glob("crops_*.png"))
    assert len(crops) == 2 and all(f"({c.name})" in report for c in crops)
    assert Image.open(crops[0]).size[0] > 4 * Image.open(crops[0]).size[1]  # LR, bicubic, 2 methods, HR


def test_evaluate_lpips_is_the_lpips_of_display_rgb(tmp_path: Path) -> None:
    pairs = load_pairs(write_geotiff(tmp_path / "s.tif", _dn(4, 64, 64)), 4)
    result = evaluate({}, pairs, tmp_path / "eval", 4, fid=False, crops=0)
    sr = torch.from_numpy(bicubic_upsample(pairs[0].lr, 4))[None]
    hr = torch.from_numpy(pairs[0].hr)[None]
    expected = lpips(
        (sr[:, [2, 1, 0]] / 0.3).clamp(0, 1), (hr[:, [2, 1, 0]] / 0.3).clamp(0, 1), normalize=True
    )
    assert result["per_image"][BICUBIC][0]["lpips"] == pytest.approx(float(expected[0]), rel=1e-5)
    reference = F.interpolate(torch.from_numpy(pairs[0].lr)[None], scale_factor=4, mode="bicubic")
    np.testing.assert_allclose(sr, reference, atol=1e-6)


def test_evaluate_rgb_pictures_non_integer_scale(tmp_path: Path) -> None:
    folder = tmp_path / "aerial"
    folder.mkdir()
    for seed in range(2):
        _png(folder / f"{seed}.png", 66, 66, seed)
    pairs = load_pairs(folder, 3.3)
    result = evaluate({}, pairs, tmp_path / "eval", 3.3, fid=False, crops=1)
    assert result["metadata"]["rgb_channels"] == [0, 1, 2] and result["metadata"]["display_white"] == 1.0
    assert math.isfinite(result["results"][BICUBIC]["lpips"])


def test_evaluate_nodata_note_and_input_checks(tmp_path: Path) -> None:
    dn = _dn(4, 64, 64)
    dn[:, :8, :8] = 0
    pairs = load_pairs(write_geotiff(tmp_path / "h.tif", dn, nodata=0), 4, crop=32)
    result = evaluate({}, pairs, tmp_path / "eval", 4, fid=False, crops=0)
    assert result["metadata"]["nodata_tiles_skipped"] == 1
    assert "nodata were left out" in (tmp_path / "eval" / "report.md").read_text()
    with pytest.raises(ValueError, match="reserved"):
        evaluate({BICUBIC: _nearest(4)}, pairs, tmp_path / "x", 4, fid=False)
    with pytest.raises(ValueError, match="returned"):
        evaluate({"wrong": _nearest(2)}, pairs, tmp_path / "x", 4, fid=False)


def test_upscaler_method_direct_and_tiled(tiny_model_dir: Path) -> None:
    model = load(tiny_model_dir)
    lr = np.random.default_rng(0).uniform(0.05, 0.3, (4, 40, 40)).astype(np.float32)
    direct = upscaler_method(model, tile_size=64)(lr)
    np.testing.assert_allclose(direct, model(lr), atol=1e-6)
    tiled = upscaler_method(model, tile_size=16, overlap=4)(lr)
    assert tiled.shape == (4, 160, 160)
    # away from tile seams and borders, tiling reproduces the whole-image output
    np.testing.assert_allclose(tiled[:, 8:24, 8:24], direct[:, 8:24, 8:24], atol=1e-5)


@pytest.mark.slow
def test_evaluate_fid_over_patches(tmp_path: Path) -> None:
    pairs = load_pairs(write_geotiff(tmp_path / "s.tif", _dn(4, 64, 64)), 4, crop=32)
    result = evaluate({"oracle": _oracle(pairs)}, pairs, tmp_path / "eval", 4, fid_patch=16, crops=0)
    assert result["metadata"]["fid_patches"] == 4 * 4
    rows = result["results"]
    assert 0 <= rows["oracle"]["fid"] < rows[BICUBIC]["fid"]
    assert "FID over 16 HR" in (tmp_path / "eval" / "report.md").read_text()


def test_evaluate_reports_every_kind_of_place_against_bicubic(tmp_path: Path) -> None:
    pairs = load_pairs(write_geotiff(tmp_path / "s.tif", _dn(4, 96, 96)), 4, crop=48)
    kinds = ["water", "water", "town", "town"]
    pairs = [dataclasses.replace(pair, kind=kind) for pair, kind in zip(pairs, kinds, strict=True)]
    out = tmp_path / "eval"
    names = [pairs[0].name, pairs[3].name]
    result = evaluate(
        {"oracle": _oracle(pairs), "nearest": _nearest(4)}, pairs, out, 4, fid=False, crops=names
    )
    table = result["results_by_kind"]
    assert list(table) == ["water", "town"]
    for kind, rows in (("water", [0, 1]), ("town", [2, 3])):
        for method in (BICUBIC, "oracle", "nearest"):
            psnrs = [result["per_image"][method][i]["psnr"] for i in rows]
            assert table[kind][method]["psnr"] == pytest.approx(np.mean(psnrs))
            assert table[kind][method]["pairs"] == 2
    report = (out / "report.md").read_text()
    water = table["water"]
    delta = water["nearest"]["psnr"] - water[BICUBIC]["psnr"]
    assert f"| water (2) | {water['oracle']['psnr'] - water[BICUBIC]['psnr']:.2f} | {delta:.2f} |" in report
    worst = min(("water", "town"), key=lambda k: table[k]["nearest"]["psnr"] - table[k][BICUBIC]["psnr"])
    assert f"({worst}) |" in report.split("Worst kind per method")[1].split("| nearest |")[1].split("\n")[0]
    assert sorted(p.name for p in out.glob("crops_*.png")) == ["crops_0.png", "crops_1.png"]
    assert f"{names[1]}:" in report
    with pytest.raises(ValueError, match="not evaluated: nowhere"):
        evaluate({}, pairs, out, 4, fid=False, crops=["nowhere"])


def test_evaluation_reads_dn_as_upscale_does(tmp_path: Path) -> None:
    """A declared GDAL scale/offset (as satsr writes for baseline >= 04.00 DN) was ignored by evaluate
    (DN / 10000, 0.1 off), and 16-bit pictures were DN / 65535 where upscale reads DN / 10000."""
    import rasterio
    from tests.conftest import write_geotiff

    from satsr.evaluation.datasets import _inspect
    from satsr.io.raster import RasterReader

    dn = np.full((4, 8, 8), 2000, np.uint16)
    scaled = write_geotiff(tmp_path / "scaled.tif", dn)
    with rasterio.open(scaled, "r+") as dst:
        dst.scales, dst.offsets = [1e-4] * 4, [-0.1] * 4
    picture = write_geotiff(tmp_path / "rgb16.tif", dn[:3], names=(None, None, None))
    for path in (scaled, picture):
        with RasterReader(path) as reader:
            assert _inspect(path, None).scaling == reader.meta.scaling
