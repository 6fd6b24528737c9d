import os
import stat
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from tests.conftest import write_geotiff

from satsr.io import raster
from satsr.io.bands import S2_RGBN
from satsr.io.grid import RasterError
from satsr.io.raster import RasterReader, read_raster
from satsr.io.writer import write_raster

CRS_UTM33 = CRS.from_epsg(32633)


@pytest.fixture
def dn() -> np.ndarray:
    return np.random.default_rng(0).integers(100, 5000, size=(4, 24, 40), dtype=np.uint16)


def test_geo_round_trip_keeps_bounds_crs_dtype_and_band_names(tmp_path: Path, dn: np.ndarray) -> None:
    src = write_geotiff(tmp_path / "in.tif", dn)
    reflectance, valid, meta = read_raster(src)
    sr = np.repeat(np.repeat(reflectance, 4, axis=1), 4, axis=2)
    out = write_raster(
        tmp_path / "out.tif", sr, np.repeat(np.repeat(valid, 4, 0), 4, 1), meta, 4, {"MODEL": "x"}
    )
    with rasterio.open(src) as a, rasterio.open(out) as b:
        assert b.crs == a.crs
        np.testing.assert_allclose(tuple(b.bounds), tuple(a.bounds))
        assert b.res == pytest.approx((a.res[0] / 4, a.res[1] / 4))
        assert b.dtypes[0] == "uint16" and b.descriptions == S2_RGBN
        assert b.tags()["MODEL"] == "x"
        np.testing.assert_array_equal(b.read()[:, ::4, ::4], dn)


def test_real_scale_keeps_bounds(tmp_path: Path, dn: np.ndarray) -> None:
    _, _, meta = read_raster(write_geotiff(tmp_path / "in.tif", dn))
    out = write_raster(
        tmp_path / "o.tif", np.zeros((4, 62, 104), np.float32), np.ones((62, 104), bool), meta, 2.6
    )
    with rasterio.open(tmp_path / "in.tif") as a, rasterio.open(out) as b:
        np.testing.assert_allclose(tuple(b.bounds), tuple(a.bounds))


def test_band_selection_by_name_and_index(tmp_path: Path, dn: np.ndarray) -> None:
    src = write_geotiff(tmp_path / "in.tif", dn)
    by_name, _, meta = read_raster(src, bands=["red", "B02"])
    by_index, _, _ = read_raster(src, bands=[3, 1])
    np.testing.assert_array_equal(by_name, by_index)
    assert meta.band_names == ("B04", "B02")
    with pytest.raises(RasterError, match="band B8A not found"):
        read_raster(src, bands=["B8A"])


def test_nodata_and_nan_are_masked_and_written_as_nodata(tmp_path: Path, dn: np.ndarray) -> None:
    dn[:, 3, 5] = 0
    _, valid, meta = read_raster(write_geotiff(tmp_path / "n.tif", dn, nodata=0))
    assert not valid[3, 5] and valid.sum() == valid.size - 1
    floats = (dn / 10000).astype(np.float32)
    floats[2, 7, 8] = np.nan
    reflectance, valid, meta = read_raster(write_geotiff(tmp_path / "f.tif", floats))
    assert not valid[7, 8] and np.isfinite(reflectance).all()
    out = write_raster(tmp_path / "o.tif", reflectance, valid, meta, 1)
    with rasterio.open(out) as b:
        assert np.isnan(b.read(1)[7, 8]) and np.isfinite(b.read(1)[0, 0])


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"", "not a readable raster"), (b"garbage", "not a readable raster")],
)
def test_missing_or_unreadable_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.tif"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RasterError, match=message):
        read_raster(path)


def test_all_nodata_raster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RasterError, match="every pixel is nodata"):
        read_raster(write_geotiff(tmp_path / "z.tif", np.zeros((4, 8, 8), np.uint16), nodata=0))


def test_existing_output_is_refused_and_failed_write_leaves_nothing(tmp_path: Path, dn: np.ndarray) -> None:
    reflectance, valid, meta = read_raster(write_geotiff(tmp_path / "in.tif", dn))
    with pytest.raises(RasterError, match="output exists"):
        write_raster(tmp_path / "in.tif", reflectance, valid, meta, 1)
    with pytest.raises(ValueError):
        write_raster(tmp_path / "out.tif", reflectance[0], valid, meta, 1)  # 2-D array: wrong shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_valid_pixels_never_collide_with_nodata(tmp_path: Path, dn: np.ndarray) -> None:
    _, valid, meta = read_raster(write_geotiff(tmp_path / "in.tif", dn, nodata=0))
    dark = np.full((4, 24, 40), -0.01, np.float32)  # negative reflectance rounds to DN 0 = nodata
    out = write_raster(tmp_path / "o.tif", dark, valid, meta, 1)
    with rasterio.open(out) as b:
        assert (b.read() == 1).all()


def test_output_gets_a_normal_file_mode(tmp_path: Path, dn: np.ndarray) -> None:
    reflectance, valid, meta = read_raster(write_geotiff(tmp_path / "in.tif", dn))
    old = os.umask(0o022)
    try:
        out = write_raster(tmp_path / "out.tif", reflectance, valid, meta, 1, {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not the 0600 of a temporary file


def test_a_decimated_read_takes_the_centre_pixel_of_each_cell(tmp_path: Path, dn: np.ndarray) -> None:
    dn = dn.copy()
    dn[:, 7, 12] = 0  # nodata at a picked pixel (the centre of cell (1, 2) for k = 5)
    with RasterReader(write_geotiff(tmp_path / "in.tif", dn, nodata=0)) as reader:
        full, full_valid = reader.read()
        small, valid = reader.read_decimated(8)  # 40 px wide: k = 5, 5 x 8 cells, the last row clipped
    rows, cols = np.array([2, 7, 12, 17, 22]), np.array([2, 7, 12, 17, 22, 27, 32, 37])
    assert small.shape == (4, 5, 8) and valid.shape == (5, 8)
    np.testing.assert_array_equal(small, full[:, rows][:, :, cols])
    np.testing.assert_array_equal(valid, full_valid[np.ix_(rows, cols)])
    assert not valid[1, 2] and valid.sum() == 39
    with RasterReader(write_geotiff(tmp_path / "tall.tif", dn[:, :, :3])) as reader:  # 24 x 3: k = 3
        small, _ = reader.read_decimated(8)
        np.testing.assert_array_equal(small, reader.read()[0][:, [1, 4, 7, 10, 13, 16, 19, 22]][:, :, [1]])


def test_a_decimated_read_of_a_tiled_raster_goes_block_row_by_block_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dn = np.random.default_rng(1).integers(1, 5000, size=(2, 100, 90), dtype=np.uint16)
    profile = {"driver": "GTiff", "height": 100, "width": 90, "count": 2, "dtype": "uint16", "tiled": True,
               "blockxsize": 16, "blockysize": 16, "compress": "deflate", "crs": CRS_UTM33,
               "transform": rasterio.transform.from_origin(0, 0, 10, 10)}  # fmt: skip
    with rasterio.open(tmp_path / "tiled.tif", "w", **profile) as dst:
        dst.write(dn)
    monkeypatch.setattr(raster, "DECIMATED_READ_WIDTH", 40)  # windows of 32 columns
    reads: list[tuple[int, int, int, int]] = []
    with RasterReader(tmp_path / "tiled.tif") as reader:
        full, _ = reader.read()
        read = reader.read
        monkeypatch.setattr(reader, "read", lambda window: reads.append(window.flatten()) or read(window))
        small, valid = reader.read_decimated(13)  # k = 8: rows and columns 4, 12, ..., the last clipped
    rows, cols = np.minimum(np.arange(13) * 8 + 4, 99), np.minimum(np.arange(12) * 8 + 4, 89)
    np.testing.assert_array_equal(small, full[:, rows][:, :, cols])
    assert valid.all() and valid.shape == (13, 12)
    # Rows 4 and 12 share the first row of blocks: one window of rows 4..12 per 32 columns.
    assert reads[:3] == [(0, 4, 32, 9), (32, 4, 32, 9), (64, 4, 26, 9)] and len(reads) == 3 * 7
