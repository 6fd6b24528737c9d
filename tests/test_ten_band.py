"""s2-10band: all ten 10 m + 20 m bands from inputs that hold them at their native resolutions (a 10 m and
a 20 m GeoTIFF, a STAC Item of one asset per band, a .SAFE product), LR consistency per band, output
bands by name, and one clear error for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from safetensors.torch import save_file

from satsr.data.degradation import wald_degrade
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.io.grid import RasterError
from satsr.io.raster import RasterReader, read_raster
from satsr.io.tiling import align_tiling, tile_grid
from satsr.io.vrt import VRTError, stack_vrt
from satsr.models.registry import load
from satsr.models.ten_band import TEN_BANDS, TenBandSR, ten_band_config
from satsr.pipelines import upscale_file

ORIGIN = (399960.0, 5800020.0)
TINY = {
    "guided": {
        "guide_bands": list(S2_RGBN),
        "bands": list(S2_20M),
        "scale": 2,
        "channels": 8,
        "num_blocks": 1,
    },
    "rgbn": {"in_channels": 4, "scale": 4, "channels": 8, "num_blocks": 1},
}


def write(
    path: Path, dn: np.ndarray, names: tuple[str, ...], pixel: float, origin=ORIGIN, crs=32633, **tags
) -> Path:  # type: ignore[no-untyped-def]
    count, height, width = dn.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=count, dtype=dn.dtype, nodata=0,
        crs=CRS.from_epsg(crs), transform=Affine(pixel, 0, origin[0], 0, -pixel, origin[1]),
    ) as dst:  # fmt: skip
        dst.write(dn)
        dst.update_tags(**tags)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
    return path


def scene(side: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 10 m stack (4, side, side) and a 20 m one (6, side / 2, side / 2) of uint16 L1C-like DN."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    base = 1500 + 500 * np.sin(xx / 3) * np.cos(yy / 4)
    fine = (base[None] + rng.integers(0, 200, (4, side, side))).astype(np.uint16)
    coarse = fine[:, ::2, ::2].astype(float).mean(0, keepdims=True) + rng.integers(
        0, 300, (6, side // 2, side // 2)
    )
    return fine, coarse.astype(np.uint16)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    fine, coarse = scene()
    ten = write(tmp_path / "s2_10m.tif", fine, S2_RGBN, 10.0)
    return ten, write(tmp_path / "s2_20m.tif", coarse, S2_20M, 20.0), fine, coarse


@pytest.fixture
def tiny_ten_band(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = ten_band_config({**TINY["guided"], "base": "injection"}, TINY["rgbn"], "tiny test model")
    model = TenBandSR(**{k: v for k, v in config.items() if k not in ("architecture", "bands", "summary")})
    for p in model.parameters():  # the zero-initialised tails too: a network that adds detail
        p.data += 0.01 * torch.randn_like(p)
    folder = tmp_path / "tiny-10band"
    folder.mkdir()
    save_file(model.state_dict(), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_20m_bands_are_stacked_on_the_10m_grid_each_pixel_repeated(pair) -> None:  # type: ignore[no-untyped-def]
    ten, twenty, fine, coarse = pair
    vrt = stack_vrt({"B02": str(ten), "B11": (str(twenty), 5)})
    with rasterio.open(vrt) as src:
        assert (src.width, src.height, src.descriptions) == (24, 24, ("B02", "B11"))
        np.testing.assert_array_equal(src.read(1), fine[0])
        np.testing.assert_array_equal(src.read(2), np.kron(coarse[4], np.ones((2, 2), np.uint16)))


@pytest.mark.parametrize(
    ("origin", "pixel", "crs", "message"),
    [
        ((ORIGIN[0] + 10, ORIGIN[1]), 20.0, 32633, "grid lines must meet"),  # shifted half a 20 m pixel
        (ORIGIN, 15.0, 32633, "pixel sizes must be whole multiples"),
        (ORIGIN, 20.0, 32632, "another CRS"),
        ((ORIGIN[0] + 20, ORIGIN[1]), 20.0, 32633, "does not cover"),  # starts one 20 m pixel late
    ],
)
def test_grids_that_do_not_align_are_refused(tmp_path: Path, pair, origin, pixel, crs, message) -> None:  # type: ignore[no-untyped-def]
    ten, _, _, coarse = pair
    other = write(tmp_path / "other.tif", coarse, S2_20M, pixel, origin=origin, crs=crs)
    with pytest.raises(VRTError, match=message):
        stack_vrt({"B02": str(ten), "B05": str(other)})
    with pytest.raises(RasterError, match=message):  # and through the pipeline, before any output
        upscale_file(ten, tmp_path / "out.tif", "s2-10band", add_bands=[other])
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_ten_band_model_scales_and_lr_consistency(tiny_ten_band: Path, pair) -> None:  # type: ignore[no-untyped-def]
    _, _, fine, coarse = pair
    model = load(tiny_ten_band)
    x = np.concatenate([fine, np.kron(coarse, np.ones((2, 2)))]).astype(np.float32) / 10000
    x = x[[list(S2_RGBN + S2_20M).index(b) for b in TEN_BANDS]]  # band-number order
    ten_m, twenty_m = [TEN_BANDS.index(b) for b in S2_RGBN], [TEN_BANDS.index(b) for b in S2_20M]
    for scale in (1, 2, 4):
        y = model.at_scale(scale)(x)
        assert y.shape == (10, 24 * scale, 24 * scale)
    y1 = model.at_scale(1)(x)
    np.testing.assert_array_equal(y1[ten_m], x[ten_m])  # the 10 m bands at 10 m are the input
    raw = TenBandSR(guided={**TINY["guided"], "base": "injection"}, rgbn=TINY["rgbn"], lr_consistency=False)
    raw.load_state_dict(model.network.state_dict())
    projected, unprojected = model.network(torch.from_numpy(x[None])), raw(torch.from_numpy(x[None]))
    native = torch.from_numpy(coarse[None].astype(np.float32) / 10000)
    ten = torch.from_numpy(fine[None].astype(np.float32) / 10000)
    for index, lr, factor, bands in ((twenty_m, native, 8, S2_20M), (ten_m, ten, 4, S2_RGBN)):
        after, before = (
            (wald_degrade(y[:, index], factor, bands) - lr).abs().mean() for y in (projected, unprojected)
        )
        assert after < 0.5 * before  # back-projection, per band group onto its own grid


def test_bundled_model_is_consistent_with_every_band_of_a_real_scene() -> None:
    """The stated tolerance (README, model card): every band's MTF degradation onto its own grid matches
    its input to 1e-3 reflectance (10 DN) on average for the 20 m bands, 3e-4 for the 10 m bands."""
    folder = Path(__file__).resolve().parents[2] / "shared/data/s2/dsen2_l1c"
    if not folder.is_dir():
        pytest.skip("needs ../shared/data/s2/dsen2_l1c")
    fine = read_raster(folder / "S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif")[0][:, :128, :128]
    coarse = read_raster(folder / "S2A_MSIL1C_20170527_T33UUB_20m_B05_B06_B07_B8A_B11_B12.tif")[0][
        :, :64, :64
    ]
    x = np.concatenate([fine, np.kron(coarse, np.ones((2, 2), np.float32))])
    x = x[[list(S2_RGBN + S2_20M).index(b) for b in TEN_BANDS]]
    y = torch.from_numpy(load("s2-10band")(x)[None])
    ten_m, twenty_m = [TEN_BANDS.index(b) for b in S2_RGBN], [TEN_BANDS.index(b) for b in S2_20M]
    error20 = (wald_degrade(y[:, twenty_m], 8, S2_20M) - torch.from_numpy(coarse[None])).abs().mean()
    error10 = (wald_degrade(y[:, ten_m], 4, S2_RGBN) - torch.from_numpy(fine[None])).abs().mean()
    assert error20 < 1e-3 and error10 < 3e-4


def test_pair_of_files_to_ten_bands_by_name_in_the_order_asked(
    tmp_path: Path, tiny_ten_band: Path, pair
) -> None:  # type: ignore[no-untyped-def]
    ten, twenty, fine, _ = pair
    out = upscale_file(ten, tmp_path / "sr.tif", tiny_ten_band, add_bands=[twenty], scale=1,
                       bands=["swir16", "B05", "red"])  # fmt: skip
    with rasterio.open(out) as src:
        assert src.descriptions == ("B11", "B05", "B04") and src.res == (10.0, 10.0)
        assert src.tags()["SATSR_INPUT"] == "s2_10m.tif + s2_20m.tif"
        np.testing.assert_array_equal(src.read(3), fine[2])  # B04 at scale 1: the input
    everything = upscale_file(ten, tmp_path / "all.tif", tiny_ten_band, add_bands=[twenty])
    reflectance, valid, meta = read_raster(everything)
    assert meta.band_names == TEN_BANDS and reflectance.shape == (10, 96, 96) and valid.all()
    assert meta.transform.a == 2.5


def test_tiles_start_on_the_20m_grid_and_blend_like_one_window(tmp_path: Path) -> None:
    fine, coarse = scene(side=64)
    ten, twenty = (
        write(tmp_path / "a_10m.tif", fine, S2_RGBN, 10.0),
        write(tmp_path / "a_20m.tif", coarse, S2_20M, 20.0),
    )
    whole = read_raster(upscale_file(ten, tmp_path / "a.tif", "s2-10band", add_bands=[twenty], tile_size=64))[
        0
    ]
    tiled = upscale_file(ten, tmp_path / "b.tif", "s2-10band", add_bands=[twenty], tile_size=40, overlap=12)
    difference = np.abs(whole - read_raster(tiled)[0])
    assert (
        difference.mean() < 2e-3
    )  # the same up to the windows' borders (each window fits stage 1 on its own), blended


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        (["B01"], r"does not give band\(s\) B01 \(60 m band\)"),
        (["B09", "B02"], r"B09 \(60 m band\)"),
        (["B05", "B05"], "asked for twice"),
        (["B99"], "unknown Sentinel-2 band"),
    ],
)
def test_bands_it_does_not_give_are_refused(tmp_path: Path, pair, bands, message) -> None:  # type: ignore[no-untyped-def]
    ten, twenty, _, _ = pair
    with pytest.raises(ValueError, match=message):
        upscale_file(ten, tmp_path / "sr.tif", "s2-10band", add_bands=[twenty], bands=bands)
    assert not list(tmp_path.glob("sr*"))


def test_missing_bands_dates_and_scales_are_refused(tmp_path: Path, pair) -> None:  # type: ignore[no-untyped-def]
    ten, twenty, fine, coarse = pair
    with pytest.raises(RasterError, match="lacks B05, B06, B07, B8A, B11, B12"):
        upscale_file(ten, tmp_path / "sr.tif", "s2-10band")
    later = write(tmp_path / "later_20m.tif", coarse, S2_20M, 20.0, ACQUISITION_DATE="2021-06-02")
    dated = write(tmp_path / "dated_10m.tif", fine, S2_RGBN, 10.0, ACQUISITION_DATE="2021-05-01")
    with pytest.raises(RasterError, match="different dates"):
        upscale_file(dated, tmp_path / "sr.tif", "s2-10band", add_bands=[later])
    with pytest.raises(RasterError, match="band B02 is also in"):
        upscale_file(ten, tmp_path / "sr.tif", "s2-10band", add_bands=[ten])
    with pytest.raises(RasterError, match="supports scale 1 or 2 or 4 only, got 3"):
        upscale_file(ten, tmp_path / "sr.tif", "s2-10band", add_bands=[twenty], scale=3)
    assert not list(tmp_path.glob("sr*"))


def test_windows_are_whole_20m_pixels() -> None:
    assert align_tiling((31, 9), 2, 64, 64) == (32, 8)
    assert align_tiling((128, 16), 2, 40, 60) == (60, 16)  # one window of the longer side
    assert align_tiling((7, 5), 1, 9, 9) == (7, 5)
    starts = {t.col for t in tile_grid(64, 64, *align_tiling((31, 9), 2, 64, 64))}
    assert starts == {0, 24, 32} and all(s % 2 == 0 for s in starts)


def test_odd_sides_are_refused_with_how_to_fix(tmp_path: Path) -> None:
    fine, _ = scene(side=24)
    stack = np.concatenate([fine, fine, fine[:2]])[:, :23, :24]  # ten bands on one 10 m grid, 23 rows
    odd = write(tmp_path / "ten.tif", stack, TEN_BANDS, 10.0)
    with pytest.raises(ValueError, match="crop it to multiples of 2"):
        upscale_file(odd, tmp_path / "sr.tif", "s2-10band")


EARTH_SEARCH_KEYS = {
    "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2", "B07": "rededge3",
    "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
}  # fmt: skip


def make_item(root: Path, fine: np.ndarray, coarse: np.ndarray, dates: dict[str, str] | None = None) -> Path:
    """An Earth-Search-like Item: one asset per band at its native resolution, keyed by common name, with
    the raster extension's scale and offset of processing baseline 04.00 (no eo:bands: keys alone)."""
    assets = {}
    for band, key in EARTH_SEARCH_KEYS.items():
        data, pixel = (
            (fine[S2_RGBN.index(band)], 10.0) if band in S2_RGBN else (coarse[S2_20M.index(band)], 20.0)
        )
        write(root / f"{band}.tif", data[None], (band,), pixel)
        assets[key] = {
            "href": f"{band}.tif",
            "roles": ["data"],
            "raster:bands": [{"scale": 0.0001, "offset": -0.1}],
        }
        if dates and band in dates:
            assets[key]["datetime"] = dates[band]
    assets["visual"] = {
        "href": "B04.tif",
        "roles": ["visual"],
        "eo:bands": [{"name": "red"}, {"name": "green"}],
    }
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None,
            "properties": {"datetime": "2023-07-01T10:00:00Z"}, "links": [], "assets": assets}  # fmt: skip
    path = root / "item.json"
    path.write_text(json.dumps(item))
    return path


def test_stac_item_of_native_grids(tmp_path: Path, tiny_ten_band: Path, pair) -> None:  # type: ignore[no-untyped-def]
    _, _, fine, coarse = pair
    item = make_item(tmp_path, fine, coarse)
    with RasterReader(item, bands=["B12", "B02"]) as reader:
        values, usable = reader.read_bands()
    assert usable.all()
    np.testing.assert_allclose(values[0], np.kron(coarse[5] * 1e-4 - 0.1, np.ones((2, 2))), atol=1e-6)
    out = upscale_file(item, tmp_path / "sr.tif", tiny_ten_band, scale=1)
    with rasterio.open(out) as src:
        assert src.descriptions == TEN_BANDS
        assert src.tags()["ACQUISITION_DATE"] == "2023-07-01T10:00:00Z"


def test_stac_item_with_bands_of_another_date_is_refused(tmp_path: Path, pair) -> None:  # type: ignore[no-untyped-def]
    _, _, fine, coarse = pair
    item = make_item(tmp_path, fine, coarse, dates={"B11": "2023-07-06T10:00:00Z"})
    with pytest.raises(RasterError, match=r"different times.*B11 2023-07-06"):
        upscale_file(item, tmp_path / "sr.tif", "s2-10band")
    assert not list(tmp_path.glob("sr*"))


def test_evaluate_dsen2_protocol_on_a_folder_of_pairs(tmp_path: Path, tiny_ten_band: Path) -> None:
    from satsr.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for k in range(2):
        fine, coarse = scene(side=48, seed=k)
        write(data / f"place{k}_10m_B02_B03_B04_B08.tif", fine, S2_RGBN, 10.0)
        write(data / f"place{k}_20m_B05_B06_B07_B8A_B11_B12.tif", coarse, S2_20M, 20.0)
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--protocol",
        "dsen2",
        "--model",
        str(tiny_ten_band),
        "--data",
        str(data),
        "--output",
        str(out),
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"bicubic", "high-pass injection", "tiny-10band"}
    assert set(metrics["bicubic"]) == {"place0", "place1", "mean"}
    assert len(metrics["tiny-10band"]["mean"]["psnr"]) == 6
    assert "| high-pass injection |" in (out / "report.md").read_text()
    assert main([*args[:4], "s2-rgbn-x4-fast", *args[5:]]) == 2  # not a ten-band model: one clear error


def test_nodata_of_a_20m_band_stays_nodata_in_that_band_only(tmp_path: Path, tiny_ten_band: Path) -> None:
    fine, coarse = scene()
    coarse[4, :3, :4] = 0  # B11: nodata in a 3 x 4 block of 20 m pixels (6 x 8 at 10 m)
    ten = write(tmp_path / "s2_10m.tif", fine, S2_RGBN, 10.0)
    twenty = write(tmp_path / "s2_20m.tif", coarse, S2_20M, 20.0)
    out = upscale_file(ten, tmp_path / "sr.tif", tiny_ten_band, add_bands=[twenty], scale=2)
    with rasterio.open(out) as src:
        masks = src.read_masks() > 0
    b11 = TEN_BANDS.index("B11")
    expected = np.ones((48, 48), bool)
    expected[:12, :16] = False  # the 20 m block at 5 m
    np.testing.assert_array_equal(masks[b11], expected)
    assert np.delete(masks, b11, axis=0).all()


def test_cli_add_bands_and_its_refusal_for_a_folder(  # type: ignore[no-untyped-def]
    tmp_path: Path, tiny_ten_band: Path, pair, capsys: pytest.CaptureFixture[str]
) -> None:
    from satsr.cli import main

    ten, twenty, _, _ = pair
    out = tmp_path / "cli.tif"
    args = ["upscale", str(ten), str(out), "--model", str(tiny_ten_band), "--add-bands", str(twenty)]
    assert main([*args, "--scale", "2", "--bands", "B8A", "B08"]) == 0
    with rasterio.open(out) as src:
        assert src.descriptions == ("B8A", "B08") and src.res == (5.0, 5.0)
    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / ten.name).write_bytes(ten.read_bytes())
    assert main(["upscale", str(folder), str(tmp_path / "o"), "--add-bands", str(twenty)]) == 2
    assert "does not apply to a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
