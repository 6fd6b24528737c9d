"""The nodata rule: a pixel is nodata only where every band is (rasterio's ``dataset_mask``); a band that
is nodata where the others are not stays nodata in that band only; no valid value equals nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from tests.conftest import NEON, RGB, NearestRGB, write_geotiff
from tests.conftest import RGB_SCALE as SCALE
from tests.conftest import nearest_rgb as nearest

from satsr.io.raster import RasterReader, read_raster
from satsr.io.writer import write_raster
from satsr.pipelines import upscale_file


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    """An 8-bit RGB picture with nodata 255: one pixel nodata in every band, two saturated in one band."""
    dn = np.random.default_rng(0).integers(20, 240, (3, 12, 14)).astype(np.uint8)
    dn[:, 2, 3] = 255  # nodata
    dn[0, 5, 6] = 255  # saturated red only
    dn[2, 8, 1] = 255  # saturated blue only
    return write_geotiff(tmp_path / "rgb.tif", dn, nodata=255, names=RGB)


def test_a_pixel_is_nodata_only_where_every_band_is(picture: Path, tmp_path: Path) -> None:
    out = upscale_file(picture, tmp_path / "o.tif", NearestRGB(), tile_size=8, overlap=2)
    with rasterio.open(picture) as src, rasterio.open(out) as dst:
        lr, sr = src.read(), dst.read()
        hr_mask = dst.dataset_mask()
    expected = nearest(lr)
    holes = nearest((lr == 255).all(axis=0))
    np.testing.assert_array_equal(hr_mask == 0, holes)  # 4 HR pixels, not 12
    # The saturated band keeps its 255 (nodata in that band only); the other bands keep their values.
    np.testing.assert_array_equal(sr, expected)


def test_a_nan_band_is_masked_in_that_band_only(tmp_path: Path) -> None:
    values = np.random.default_rng(1).uniform(0.05, 0.4, (3, 10, 10)).astype(np.float32)
    values[1, 4, 4] = np.nan
    src = write_geotiff(tmp_path / "f.tif", values, names=RGB)
    out = upscale_file(src, tmp_path / "o.tif", NearestRGB(), tile_size=8, overlap=2)
    with rasterio.open(out) as dst:
        sr = dst.read()
        assert (dst.dataset_mask() > 0).all()
    assert np.isnan(sr[1, 8:10, 8:10]).all() and np.isnan(sr).sum() == SCALE * SCALE
    np.testing.assert_allclose(sr[[0, 2]], nearest(values[[0, 2]]), rtol=1e-6)


def test_the_model_never_sees_a_nodata_value(picture: Path, tmp_path: Path) -> None:
    seen: list[np.ndarray] = []

    class Recording(NearestRGB):
        def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
            seen.append(np.asarray(lr))
            return super().__call__(lr)

    upscale_file(picture, tmp_path / "o.tif", Recording(), tile_size=16, overlap=2)
    assert seen and max(float(batch.max()) for batch in seen) < 240 / 255 + 1e-6


@pytest.mark.parametrize(
    ("dtype", "nodata", "value"),
    [("uint8", 0, -0.01), ("uint8", 255, 2.0), ("uint16", 0, -0.5), ("int16", -32768, -9.0),
     ("float32", 0.0, 0.0), ("float32", -9999.0, -9999.0), ("float32", -9999.0, -9999.001)],
)  # fmt: skip
def test_no_valid_value_equals_nodata_for_any_dtype(
    tmp_path: Path, dtype: str, nodata: float, value: float
) -> None:
    dn = np.full((3, 6, 6), 100, dtype=dtype)
    _, valid, meta = read_raster(write_geotiff(tmp_path / "in.tif", dn, nodata=nodata, names=RGB))
    out = write_raster(tmp_path / "o.tif", np.full((3, 6, 6), value, np.float32), valid, meta, 1)
    with rasterio.open(out) as dst:
        written = dst.read()
        assert dst.nodata == nodata
        assert (dst.dataset_mask() > 0).all()  # GDAL takes floats within ~5e-7 of nodata for nodata
    assert not (written == nodata).any() and np.isfinite(written).all()


def test_per_band_validity_is_read_and_a_band_mask_written(picture: Path, tmp_path: Path) -> None:
    with RasterReader(picture) as reader:
        _, usable = reader.read_bands()
    assert usable.shape == (3, 12, 14) and (~usable).sum() == 3 + 1 + 1
    assert not usable[:, 2, 3].any() and not usable[0, 5, 6] and usable[1:, 5, 6].all()


@pytest.mark.skipif(not NEON.exists(), reason="needs ../shared/data/aerial/neon")
def test_real_neon_picture_keeps_its_saturated_pixels(tmp_path: Path) -> None:
    """OSBS_029.tif: 461 pixels are 255 in every band, 2,126 in some band (saturated white)."""
    out = upscale_file(NEON, tmp_path / "o.tif", NearestRGB())
    with rasterio.open(NEON) as src, rasterio.open(out) as dst:
        lr, sr, mask = src.read(), dst.read(), dst.dataset_mask()
    assert int((lr == 255).all(axis=0).sum()) == 461 and int((lr == 255).any(axis=0).sum()) == 2126
    assert int((mask == 0).sum()) == 461 * SCALE**2
    assert int((sr == 255).all(axis=0).sum()) == 461 * SCALE**2
    np.testing.assert_array_equal(sr, nearest(lr))
