"""Sentinel-2 .SAFE folders and .SAFE.zip archives: metadata offsets, band files, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from tests.conftest import Replicate, nearest

from satsr.cli import main
from satsr.io.grid import RasterError
from satsr.io.raster import RasterReader, read_raster
from satsr.io.safe import SafeError, read_safe
from satsr.io.stac import stac_path
from satsr.pipelines import upscale_file

NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
BANDS = ("B02", "B03", "B04", "B08")


def write_jp2(path: Path, dn: np.ndarray, pixel: float = 10.0) -> None:
    """Lossless JPEG 2000 (the driver only copies, so go through an in-memory GeoTIFF)."""
    profile = {
        "driver": "GTiff", "height": dn.shape[0], "width": dn.shape[1], "count": 1, "dtype": dn.dtype.name,
        "crs": CRS.from_epsg(32633), "transform": from_origin(399960.0, 5800020.0, pixel, pixel),
    }  # fmt: skip
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(dn, 1)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES")


def metadata(level: str, baseline: str, offsets: dict[int, int] | None) -> str:
    tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    quant = "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE"
    offset_xml = "".join(f'<{tag} band_id="{i}">{v}</{tag}>' for i, v in (offsets or {}).items())
    return (
        f'<n1:Level-{level[1:]}_User_Product xmlns:n1="{NS}"><n1:General_Info><Product_Info>'
        f"<PRODUCT_START_TIME>2022-03-04T10:20:31.024Z</PRODUCT_START_TIME>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>"
        f"<Product_Image_Characteristics><{quant}>10000</{quant}>{offset_xml}"
        f"</Product_Image_Characteristics></n1:General_Info></n1:Level-{level[1:]}_User_Product>"
    )


def make_safe(
    root: Path,
    dn: np.ndarray,
    level: str = "L1C",
    baseline: str = "04.00",
    offsets: dict[int, int] | None = None,
    bands: tuple[str, ...] = BANDS,
    scl: np.ndarray | None = None,
    coarse: dict[str, np.ndarray] | None = None,  # 20 m bands (and any others) on their own grids
) -> Path:
    name = f"S2A_MSI{level}_20220304T102031_N{baseline.replace('.', '')}_R065_T33UUB_20220304T120000.SAFE"
    safe = root / name
    granule = safe / "GRANULE" / f"{level}_T33UUB_A035000_20220304T102031" / "IMG_DATA"
    img = granule / "R10m" if level == "L2A" else granule
    img.mkdir(parents=True)
    (safe / f"MTD_MSI{level}.xml").write_text(metadata(level, baseline, offsets))
    for band in bands:
        suffix = "_10m" if level == "L2A" else ""
        write_jp2(img / f"T33UUB_20220304T102031_{band}{suffix}.jp2", dn[BANDS.index(band)])
    if scl is not None or (coarse and level == "L2A"):
        (granule / "R20m").mkdir()
    if scl is not None:
        write_jp2(granule / "R20m" / "T33UUB_20220304T102031_SCL_20m.jp2", scl, pixel=20.0)
    for band, values in (coarse or {}).items():
        pixel = 10.0 * dn.shape[-1] / values.shape[-1]
        folder, suffix = (granule / "R20m", "_20m") if level == "L2A" else (granule, "")
        write_jp2(folder / f"T33UUB_20220304T102031_{band}{suffix}.jp2", values, pixel=pixel)
    (granule.parent / "QI_DATA").mkdir()
    return safe


@pytest.fixture
def dn() -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.integers(1100, 4000, (4, 20, 24)).astype(np.uint16)
    values[:, :2, :3] = 0  # the products' nodata
    return values


def test_l1c_baseline_4_applies_the_radio_offset_and_masks_nodata(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn, offsets={i: -1000 for i in range(13)})
    reflectance, valid, meta = read_raster(safe)
    assert meta.band_names == BANDS and meta.dtype == np.uint16 and meta.crs == CRS.from_epsg(32633)
    assert not valid[:2, :3].any() and valid[2:].all()
    np.testing.assert_allclose(reflectance[:, valid], (dn[:, valid] - 1000.0) / 10000, atol=1e-6)
    with RasterReader(safe) as reader:
        assert reader.tags()["ACQUISITION_DATE"] == "2022-03-04T10:20:31.024Z"
        assert reader.tags()["PROCESSING_BASELINE"] == "04.00"


def test_zip_archive_reads_the_same_pixels(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn, offsets={i: -1000 for i in range(13)})
    archive = shutil.make_archive(str(tmp_path / safe.name), "zip", tmp_path, safe.name)
    assert archive.endswith(".SAFE.zip")
    np.testing.assert_array_equal(read_raster(archive)[0], read_raster(safe)[0])


def test_l2a_reads_r10m_and_the_boa_offset(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn, level="L2A", offsets={i: -1000 for i in range(13)})
    product = read_safe(safe)
    assert product.level == "L2A" and product.scaling.offset == -1000
    reflectance, valid, _ = read_raster(safe, bands=["red", "nir"])
    np.testing.assert_allclose(reflectance[:, valid], (dn[[2, 3]][:, valid] - 1000.0) / 10000, atol=1e-6)


@pytest.mark.parametrize(("baseline", "expected"), [("03.01", 0.0), ("04.00", -1000.0)])
def test_without_offset_elements_the_baseline_decides(
    tmp_path: Path, dn: np.ndarray, baseline: str, expected: float
) -> None:
    assert read_safe(make_safe(tmp_path, dn, baseline=baseline)).scaling.offset == expected


def test_upscaled_product_keeps_dn_convention_and_records_the_date(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn, offsets={i: -1000 for i in range(13)})
    out = upscale_file(safe, tmp_path / "sr.tif", Replicate())
    with rasterio.open(out) as sr:
        written = sr.read()
        assert sr.descriptions == BANDS and sr.nodata == 0
        # GDAL band scale/offset say how DN map to reflectance, for any reader.
        np.testing.assert_allclose(sr.scales, [1e-4] * 4)
        np.testing.assert_allclose(sr.offsets, [-0.1] * 4)
    valid = nearest(dn[0]) > 0
    np.testing.assert_array_equal(written[:, valid], nearest(dn)[:, valid])  # (DN - 1000) / 1e4 and back
    item = json.loads(stac_path(out).read_text())
    assert item["properties"]["datetime"] == "2022-03-04T10:20:31.024000Z"


def test_a_missing_band_is_named(tmp_path: Path, dn: np.ndarray) -> None:
    with pytest.raises(SafeError, match="band B08 is missing"):
        read_safe(make_safe(tmp_path, dn, bands=("B02", "B03", "B04"))).vrt(BANDS)


def test_a_60m_band_is_named(tmp_path: Path, dn: np.ndarray) -> None:
    with pytest.raises(RasterError, match="band B01 is a 60 m band; satsr reads the 10 m and 20 m bands"):
        RasterReader(make_safe(tmp_path, dn), bands=["B01"])


def test_a_missing_20m_band_is_named(tmp_path: Path, dn: np.ndarray) -> None:
    with pytest.raises(RasterError, match="band B05 is missing"):
        RasterReader(make_safe(tmp_path, dn), bands=["B02", "B05"])


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_20m_bands_are_read_on_the_10m_grid_each_pixel_repeated(
    tmp_path: Path, dn: np.ndarray, level: str
) -> None:
    rng = np.random.default_rng(0)
    twenty = {b: rng.integers(1000, 5000, (dn.shape[1] // 2, dn.shape[2] // 2)).astype(np.uint16)
              for b in ("B05", "B11")}  # fmt: skip
    safe = make_safe(tmp_path, dn, level=level, coarse=twenty)
    with RasterReader(safe, bands=["B11", "B04", "B05"]) as reader:
        values, usable = reader.read_bands()
        assert reader.meta.band_names == ("B11", "B04", "B05")
        assert (reader.meta.height, reader.meta.width) == dn.shape[1:]
    assert usable[[0, 2]].all() and usable[1].sum() == usable[1].size - 6  # B04's nodata corner
    offset = 1000  # baseline 04.00
    for i, band in ((0, "B11"), (2, "B05")):
        expected = (twenty[band].astype(np.float32) - offset) / 10000
        np.testing.assert_allclose(values[i], np.kron(expected, np.ones((2, 2))), atol=1e-7)
    np.testing.assert_allclose(values[1][usable[1]], (dn[2][usable[1]].astype(np.float32) - offset) / 10000)


def test_product_with_a_missing_band_is_refused_by_upscale(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn, bands=("B02", "B03", "B04"))
    with pytest.raises(RasterError, match="needs 4 bands"):
        upscale_file(safe, tmp_path / "sr.tif", Replicate())
    assert not list(tmp_path.glob("sr*"))


def test_corrupt_jp2_is_one_clear_error_and_no_output(tmp_path: Path, dn: np.ndarray) -> None:
    safe = make_safe(tmp_path, dn)
    next(safe.rglob("*_B03.jp2")).write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n garbage")
    with pytest.raises(RasterError, match="B03"):
        upscale_file(safe, tmp_path / "sr.tif", Replicate())
    assert not list(tmp_path.glob("sr*")) and not list(tmp_path.glob(".sr*"))


def test_not_a_product(tmp_path: Path) -> None:
    (tmp_path / "x.SAFE").mkdir()
    with pytest.raises(RasterError, match="not a Sentinel-2 L1C/L2A product"):
        RasterReader(tmp_path / "x.SAFE")


def test_cli_takes_a_safe_folder_as_one_input_and_safes_in_a_folder_run(
    tmp_path: Path, dn: np.ndarray, tiny_model_dir: Path
) -> None:
    safe = make_safe(tmp_path / "in", dn, offsets={i: -1000 for i in range(13)})
    shutil.make_archive(str(tmp_path / "in" / "copy.SAFE"), "zip", safe.parent, safe.name)
    assert main(["upscale", str(safe), str(tmp_path / "one.tif"), "--model", str(tiny_model_dir)]) == 0
    assert (tmp_path / "one.tif").is_file()
    assert main(["upscale", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == [
        safe.name.removesuffix(".SAFE") + ".tif",
        "copy.tif",
    ]


def test_l2a_scene_classification_masks_clouds_on_request(tmp_path: Path, dn: np.ndarray) -> None:
    scl = np.full((10, 12), 4, np.uint8)  # vegetation
    scl[4:6, 6:9] = 9  # cloud, high probability (20 m pixels)
    safe = make_safe(tmp_path, dn, level="L2A", offsets={i: -1000 for i in range(13)}, scl=scl)
    _, valid, _ = read_raster(safe)
    assert valid[8:12, 12:18].all()  # no masking unless asked
    out = upscale_file(safe, tmp_path / "sr.tif", Replicate(), mask_clouds=True)
    with rasterio.open(out) as sr:
        masked = sr.read_masks(1) == 0
        assert "SATSR_MASK_CLOUDS" in sr.tags()
    expected = nearest(np.kron(np.isin(scl, (9,)), np.ones((2, 2), bool)) | (dn[0] == 0)) > 0
    np.testing.assert_array_equal(masked, expected)


def test_cloud_masking_needs_an_l2a_product(tmp_path: Path, dn: np.ndarray) -> None:
    with pytest.raises(RasterError, match="scene classification"):
        RasterReader(make_safe(tmp_path, dn), mask_clouds=True)


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_ten_band_model_reads_a_product_s_10m_and_20m_bands(
    tmp_path: Path, dn: np.ndarray, level: str
) -> None:
    from satsr.io.bands import S2_20M

    rng = np.random.default_rng(1)
    twenty = {b: rng.integers(1100, 4000, (10, 12)).astype(np.uint16) for b in S2_20M}
    safe = make_safe(tmp_path, dn, level=level, coarse=twenty)
    out = upscale_file(safe, tmp_path / "sr.tif", "s2-10band", scale=1, bands=["B12", "B02"])
    with rasterio.open(out) as src:
        assert src.descriptions == ("B12", "B02") and src.res == (10.0, 10.0)
        b02 = src.read(2)
        valid = src.read_masks(2) > 0
    np.testing.assert_array_equal(b02[valid], dn[0][valid])  # the 10 m band at 10 m is the input, in DN
    assert not valid[:2, :3].any() and valid.sum() == valid.size - 6  # the product's nodata corner
