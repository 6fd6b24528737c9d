"""satsr.upscale_dataarray on (rio)xarray DataArrays: geo grid, laziness, masks, band names, samples."""

from pathlib import Path

import dask.array
import numpy as np
import pytest
import rioxarray
import xarray as xr

import satsr
from tests.test_pipelines import SCALE, NoisyReplicate, Replicate, nearest


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
    assert mean.shape == std.shape and 0.002 < float(std.median()) < 0.02
    with pytest.raises(ValueError, match="diffusion model"):
        satsr.upscale_dataarray(open_lazy(smooth_tif), Replicate(), samples=3)
