"""``satsr.upscale_dataarray``: super-resolution of (rio)xarray DataArrays, lazy dask-backed ones included.

The array runs through the same streamed tiling as ``satsr upscale``, and comes back on the finer
grid: coordinates of the HR pixel centres over the same bounds, and with rioxarray, the CRS and the
transform scaled by 1 / scale. DN are converted by the one convention of files and arrays
(``satsr.io.bands.dn_scaling``), and masks and the fill of masked values follow ``satsr.io.masks``:
the array is a scene of the one path of ``satsr.pipelines.scene``, like a file.

A dask-backed array gives a dask-backed result (the ``map_overlap`` pattern): each output chunk is
computed, when asked for, from the LR chunk it covers plus the halo of every window it is blended
from. It runs the same windows, seeds and blending as an in-memory run, so its pixels are the same
up to float rounding: a network's output can depend, in the last bits, on the other windows in its
batch (rgb-continuous on OSBS_029.tif: at most 3.6e-7 in reflectance, far below one DN; bit for bit
for a model without that dependence, or with ``batch_size=1``). Needs ``pip install satsr[xarray]``.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from satsr.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE
from satsr.io.bands import ReflectanceScaling, dn_scaling
from satsr.io.raster import STATS_READ_SIDE
from satsr.io.stream import TileFn
from satsr.io.tiling import DEFAULT_RAMP, Region, SceneGrid, StreamPlan, fit_tiling, hr_index
from satsr.models.registry import Upscaler
from satsr.models.sampling import sampling_tile_fn
from satsr.pipelines.bands import select_array_bands
from satsr.pipelines.request import requested_model
from satsr.pipelines.scene import ArrayScene, array_band_means, array_sink, run_scene

if TYPE_CHECKING:
    import xarray as xr

#: Attributes of a DN array that the reflectance output must not carry over.
DN_ATTRS = ("scale_factor", "add_offset", "_FillValue", "units")


def upscale_dataarray(
    da: xr.DataArray, model: str | Path | Upscaler = DEFAULT_MODEL, scale: float | None = None,
    samples: int = 1, steps: int | None = None, seed: int = DEFAULT_SEED, tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP, batch_size: int = DEFAULT_BATCH_SIZE, band_dim: str = "band",
    scaling: ReflectanceScaling | None = None, device: str = "cpu",
) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:  # fmt: skip
    """Super-resolve a ``(band, y, x)`` DataArray; returns float32 reflectance on the finer grid.

    DN follow the convention of files (``satsr.io.bands.dn_scaling``): 8-bit arrays are DN / 255, other
    integers Sentinel-2's DN / 10000, unless ``scale_factor``/``add_offset`` say otherwise; floats are
    reflectance; ``scaling`` overrides it. NaN and rioxarray's nodata value are masked per band (a pixel
    is masked only where every band is): NaN in the output. ``samples > 1`` (diffusion models) returns
    ``(mean, std)``, the std per pixel and band. ``scale``: the model's own by default; a
    continuous-scale model takes any real one in [1, 10], and the result has ``round(y * scale) x
    round(x * scale)`` pixels on the same bounds. A dask-backed array gives a lazy, dask-backed result.
    """
    upscaler, s, _ = requested_model(model, device, scale, None)
    if set(da.dims) != {band_dim, "y", "x"}:
        raise ValueError(f"expected dims ({band_dim!r}, 'y', 'x'), got {da.dims}")
    if samples < 1 or (samples > 1 and not upscaler.stochastic):
        raise ValueError(f"samples={samples}: needs >= 1, and > 1 only with a diffusion model")
    da = select_array_bands(da.transpose(band_dim, "y", "x"), band_dim, upscaler)
    _, height, width = da.shape
    if height == 0 or width == 0:
        raise ValueError("the array is empty")
    scaling, nodata = scaling or array_scaling(da), _nodata(da)
    tile_size, overlap = fit_tiling(tile_size, overlap, height, width, upscaler.grid_multiple)
    grid = SceneGrid((height, width), s)
    channels = len(upscaler.bands)
    tile_fn = sampling_tile_fn(upscaler, samples, steps, seed, grid if upscaler.continuous else None)
    run = _RegionRun(
        (height, width), s, tile_fn, tile_size, overlap, batch_size, (2 if samples > 1 else 1) * channels,
        array_band_means(da, nodata, scaling, STATS_READ_SIDE), nodata, scaling,
    )  # fmt: skip
    plan = StreamPlan.build(height, width, s, run.tile_size, run.overlap, DEFAULT_RAMP)
    out_h, out_w = grid.out_size
    if da.chunks is not None:
        out = _lazy(da.data, run, plan)
    else:
        out = run(np.asarray(da.values), (0, 0), (0, out_h, 0, out_w))
    return _results(da, out, upscaler, s, seed, samples, band_dim)


def array_scaling(da: xr.DataArray) -> ReflectanceScaling:
    """The DN convention (``dn_scaling``) of an array as rioxarray opens it: an integer array with its
    ``scale_factor``/``add_offset`` attributes; a float array that rioxarray masked and scaled
    (``mask_and_scale=True``: the file's integer dtype in ``encoding``) as DN of that dtype when no
    scaling was declared, as physical values when one was; any other float array as reflectance."""
    if np.issubdtype(da.dtype, np.integer):
        return dn_scaling(da.dtype, da.attrs.get("scale_factor"), da.attrs.get("add_offset"))
    encoded = da.encoding.get("rasterio_dtype") or da.encoding.get("dtype")
    if encoded is not None and np.issubdtype(np.dtype(encoded), np.integer):
        declared = (da.encoding.get("scale_factor", 1.0), da.encoding.get("add_offset", 0.0))
        if declared == (1.0, 0.0):
            return dn_scaling(encoded)
    return ReflectanceScaling.identity()


def _nodata(da: xr.DataArray) -> float | None:
    """The array's nodata value (rioxarray's, else ``_FillValue``), None for none or NaN (always masked)."""
    nodata = da.rio.nodata if hasattr(da, "rio") else da.attrs.get("_FillValue")
    if nodata is None or np.isnan(float(nodata)):
        return None
    return float(nodata)


@dataclass(frozen=True)
class _RegionRun:
    """Computes an HR region of the scene from the LR pixels it depends on (``StreamPlan.lr_bounds``)."""

    size: tuple[int, int]  # LR scene (height, width)
    scale: float
    tile_fn: TileFn
    tile_size: int
    overlap: int
    batch_size: int
    out_channels: int  # bands (the mean), or twice that (mean, std)
    fill: np.ndarray
    nodata: float | None
    scaling: ReflectanceScaling

    def __call__(self, lr: np.ndarray, origin: tuple[int, int], region: Region) -> np.ndarray:
        y0, y1, x0, x1 = region
        out = np.empty((self.out_channels, y1 - y0, x1 - x0), np.float32)
        scene = ArrayScene(np.asarray(lr), origin, self.size, self.fill, self.nodata, self.scaling)
        run_scene(scene, self.tile_fn, self.scale, self.tile_size, self.overlap, array_sink(out, region),
                  self.out_channels, batch_size=self.batch_size, region=region)  # fmt: skip
        return out


def _lazy(data: Any, run: _RegionRun, plan: StreamPlan) -> Any:
    """A dask array of the result, one output chunk per LR chunk of ``data`` (band dimension whole)."""
    import dask
    import dask.array

    (height, width), (out_h, out_w) = (
        run.size,
        (round(run.size[0] * run.scale), round(run.size[1] * run.scale)),
    )
    data = data.rechunk({0: -1})
    row_bounds = np.cumsum((0, *data.chunks[1])).tolist()
    col_bounds = np.cumsum((0, *data.chunks[2])).tolist()
    token = uuid.uuid4().hex
    compute = dask.delayed(functools.partial(run), name=f"satsr-model-{token}")
    blocks = []
    for i, (a, b) in enumerate(itertools.pairwise(row_bounds)):
        row = []
        for j, (c, d) in enumerate(itertools.pairwise(col_bounds)):
            region = (hr_index(a, height, out_h), hr_index(b, height, out_h),
                      hr_index(c, width, out_w), hr_index(d, width, out_w))  # fmt: skip
            r0, r1, c0, c1 = plan.lr_bounds(region)
            piece = compute(data[:, r0:r1, c0:c1], (r0, c0), region, dask_key_name=f"satsr-{token}-{i}-{j}")
            shape = (run.out_channels, region[1] - region[0], region[3] - region[2])
            row.append(dask.array.from_delayed(piece, shape=shape, dtype=np.float32))
        blocks.append(row)
    return dask.array.block(blocks)


def _hr_coords(coord: np.ndarray, out: int) -> np.ndarray:
    """Centres of ``out`` pixels evenly dividing the extent of the pixels whose centres are ``coord``
    (regular spacing): for an integer scale, the sub-pixels of each pixel."""
    step = float(coord[1] - coord[0]) if len(coord) > 1 else 1.0
    first_edge = float(coord[0]) - step / 2
    return first_edge + (np.arange(out) + 0.5) * (step * len(coord) / out)


def _results(
    da: xr.DataArray, out: Any, upscaler: Upscaler, s: float, seed: int, samples: int, band_dim: str
) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """The output DataArray(s) on the finer grid, with the CRS, transform and provenance attributes."""
    import xarray as xr

    channels, (_, height, width), (out_h, out_w) = len(upscaler.bands), da.shape, out.shape[1:]
    coords: dict[str, Any] = {
        band_dim: list(upscaler.bands),
        "y": _hr_coords(da["y"].values, out_h) if "y" in da.coords else np.arange(out_h),
        "x": _hr_coords(da["x"].values, out_w) if "x" in da.coords else np.arange(out_w),
    }
    provenance = {
        "satsr_model": upscaler.name,
        "satsr_scale": s,
        "satsr_seed": seed,
        "satsr_samples": samples,
    }
    # The input's DN scaling, fill value and statistics do not describe the output's reflectance.
    attrs = {k: v for k, v in da.attrs.items() if k not in DN_ATTRS and not k.startswith("STATISTICS_")}
    attrs.update(provenance)
    attrs["long_name"] = tuple(upscaler.bands)  # rioxarray's band descriptions: the output's bands
    results = []
    for part in (out[:channels], out[channels:]) if samples > 1 else (out,):
        result = xr.DataArray(part, dims=(band_dim, "y", "x"), coords=coords, attrs=attrs)
        if hasattr(da, "rio") and da.rio.crs is not None:
            result = result.rio.write_crs(da.rio.crs)
            result = result.rio.write_transform(
                da.rio.transform() @ Affine.scale(width / out_w, height / out_h)
            )
            result = result.rio.write_nodata(np.nan)
        results.append(result)
    return (results[0], results[1]) if samples > 1 else results[0]
