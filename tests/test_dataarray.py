"""satsr.upscale_dataarray on (rio)xarray DataArrays: geo grid, laziness, masks, band names, samples."""

from pathlib import Path

import dask.array
import numpy as np
import pytest
import rioxarray
import torch
import xarray as xr

import satsr
from satsr.io.raster import read_raster
from tests.conftest import (
    NEON,
    RGB,
    SCALE,
    NearestRGB,
    NoisyReplicate,
    Replicate,
    nearest,
    nearest_rgb,
    write_geotiff,
)


def open_lazy(path: Path) -> xr.DataArray:
    da = rioxarray.open_rasterio(path, chunks={"x": 16, "y": 16}, mask_and_scale=False)
    assert isinstance(da, xr.DataArray)
    return da


def test_lazy_array_comes_out_on_the_finer_grid_with_the_same_bounds(smooth_tif: Path) -> None:
    da = open_lazy(smooth_tif)
    assert isinstance(da.data, dask.array.Array)
    sr = satsr.upscale_dataarray(da, Replicate(), tile_size=32, overlap=8)
    assert isinstance(sr, xr.DataArray) and sr.shape == (4, 70 * SCALE, 90 * SCALE)
    np.testing.assert_allclose(sr.values, nearest(da.values.astype(np.float32) / 10000), rtol=1e-6)
    assert sr.rio.crs == da.rio.crs
    np.testing.assert_allclose(sr.rio.bounds(), da.rio.bounds())
    np.testing.assert_allclose(sr.rio.resolution(), np.array(da.rio.resolution()) / SCALE)


def test_nan_and_nodata_are_masked(smooth_tif: Path) -> None:
    da = open_lazy(smooth_tif).astype(np.float32) / 10000
    da = da.rio.write_nodata(np.nan)
    values = da.values.copy()
    values[:, 5, 7] = np.nan
    sr = satsr.upscale_dataarray(da.copy(data=values), Replicate(), tile_size=32, overlap=8)
    assert isinstance(sr, xr.DataArray)
    hr_nan = np.isnan(sr.values).all(axis=0)
    assert hr_nan[5 * SCALE : 6 * SCALE, 7 * SCALE : 8 * SCALE].all() and hr_nan.sum() == SCALE * SCALE


def test_bands_are_picked_by_name_and_missing_ones_named(smooth_tif: Path) -> None:
    da = open_lazy(smooth_tif).assign_coords(band=["nir", "red", "green", "blue"])
    sr = satsr.upscale_dataarray(da, Replicate(), tile_size=32, overlap=8)
    assert isinstance(sr, xr.DataArray) and list(sr["band"].values) == ["B02", "B03", "B04", "B08"]
    np.testing.assert_allclose(sr.values[0], nearest(da.values[3].astype(np.float32) / 10000), rtol=1e-6)
    with pytest.raises(ValueError, match="lacks B08"):
        satsr.upscale_dataarray(da.isel(band=[1, 2, 3]), Replicate())


def test_samples_give_mean_and_std(smooth_tif: Path) -> None:
    mean, std = satsr.upscale_dataarray(
        open_lazy(smooth_tif), NoisyReplicate(), samples=3, tile_size=32, overlap=8
    )
    assert mean.shape == std.shape and 0.002 < float(std.compute().median()) < 0.02  # lazy: dask in, dask out
    with pytest.raises(ValueError, match="diffusion model"):
        satsr.upscale_dataarray(open_lazy(smooth_tif), Replicate(), samples=3)


def test_8_bit_arrays_follow_the_file_convention(tmp_path: Path) -> None:
    """uint8 is DN / 255 for arrays as for files (it was DN / 10000, values 0-0.026), also when rioxarray
    masked and scaled it to float."""
    dn = np.random.default_rng(2).integers(1, 255, (3, 20, 24)).astype(np.uint8)
    path = write_geotiff(tmp_path / "rgb.tif", dn, nodata=0, names=RGB)
    out = satsr.upscale_file(path, tmp_path / "o.tif", NearestRGB(), tile_size=16, overlap=4)
    from_file, _, _ = read_raster(out)
    for masked in (False, True):
        da = rioxarray.open_rasterio(path, mask_and_scale=masked)
        sr = satsr.upscale_dataarray(da, NearestRGB(), tile_size=16, overlap=4)
        assert isinstance(sr, xr.DataArray)
        np.testing.assert_allclose(sr.values, nearest_rgb(dn.astype(np.float32) / 255), rtol=1e-6)
        np.testing.assert_allclose(sr.values, from_file, rtol=1e-6)
        assert "scale_factor" not in sr.attrs and np.isnan(sr.attrs["_FillValue"])  # DN attributes gone


class Blur(NearestRGB):
    """Replication after a 5 x 5 box blur: a model with a receptive field, whose tiles differ at borders."""

    calls = 0

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        Blur.calls += len(lr)
        x = torch.from_numpy(np.asarray(lr, np.float32))
        blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        return super().__call__(blurred.numpy())


def test_a_dask_array_gives_a_lazy_result_equal_to_the_eager_one(tmp_path: Path) -> None:
    dn = np.random.default_rng(3).integers(1, 255, (3, 50, 61)).astype(np.uint8)
    dn[:, 10, 12] = 0
    dn[1, 30, 40] = 0  # nodata in one band only: NaN in that band only
    path = write_geotiff(tmp_path / "rgb.tif", dn, nodata=0, names=RGB)
    kwargs = {"tile_size": 16, "overlap": 4, "batch_size": 3}
    eager = satsr.upscale_dataarray(rioxarray.open_rasterio(path), Blur(), **kwargs)  # type: ignore[arg-type]
    Blur.calls = 0
    lazy = satsr.upscale_dataarray(rioxarray.open_rasterio(path, chunks={"x": 24, "y": 20}), Blur(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(eager, xr.DataArray) and isinstance(lazy, xr.DataArray)
    assert isinstance(lazy.data, dask.array.Array) and Blur.calls == 0  # nothing computed yet
    assert lazy.data.numblocks == (1, 3, 3)
    corner = lazy.isel(y=slice(0, 8), x=slice(0, 8)).values  # one output chunk: only its windows run
    assert 0 < Blur.calls < 20 and np.array_equal(corner, eager.values[:, :8, :8], equal_nan=True)
    np.testing.assert_array_equal(lazy.values, eager.values)  # bit for bit, NaN where masked
    nan = np.isnan(eager.values)
    assert nan[:, 20:22, 24:26].all() and nan[1, 60:62, 80:82].all() and nan.sum() == 3 * 4 + 4
    assert lazy.rio.crs == eager.rio.crs and lazy.rio.transform() == eager.rio.transform()


@pytest.mark.skipif(not NEON.exists(), reason="needs ../shared/data/aerial/neon")
def test_real_8_bit_picture_reads_as_dn_over_255() -> None:
    sr = satsr.upscale_dataarray(rioxarray.open_rasterio(NEON), NearestRGB())
    assert isinstance(sr, xr.DataArray)
    assert 0.9 < float(np.nanmax(sr.values)) <= 1.0  # it was 0.0255: DN / 10000
    assert int(np.isnan(sr.values).all(axis=0).sum()) == 461 * 4


def test_a_lazy_result_of_a_real_network_matches_the_eager_one_with_single_window_batches(
    tiny_model_dir: Path, smooth_tif: Path
) -> None:
    """With batch_size=1 no window's output can depend on its batch: then lazy is eager bit for bit."""
    model = satsr.load(tiny_model_dir)
    kwargs = {"tile_size": 16, "overlap": 4, "batch_size": 1}
    eager = satsr.upscale_dataarray(rioxarray.open_rasterio(smooth_tif), model, **kwargs)  # type: ignore[arg-type]
    lazy = satsr.upscale_dataarray(open_lazy(smooth_tif), model, **kwargs)  # type: ignore[arg-type]
    assert isinstance(eager, xr.DataArray) and isinstance(lazy, xr.DataArray)
    np.testing.assert_array_equal(lazy.values, eager.values)
