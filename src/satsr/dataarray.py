"""``satsr.upscale_dataarray``: super-resolution of (rio)xarray DataArrays, lazy dask-backed ones included.

The array runs through the same streamed tiling as ``satsr upscale``, and comes back on the finer
grid: coordinates of the HR pixel centres over the same bounds, and with rioxarray, the CRS and the
transform scaled by 1 / scale. DN are converted by the one convention of files and arrays
(``satsr.io.bands.dn_scaling``) and masks follow the nodata rule of ``satsr.io.raster``.

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
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from satsr.defaults import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE
from satsr.io.bands import ReflectanceScaling, canonical_band_name, dn_scaling
from satsr.io.raster import STATS_READ_SIDE
from satsr.io.stream import TileFn, upscale_stream
from satsr.io.tiling import DEFAULT_RAMP, Region, SceneGrid, StreamPlan, Tile, fit_tiling, hr_index, lr_pixels
from satsr.models.registry import Upscaler, load
from satsr.models.sampling import sampling_tile_fn
from satsr.pipelines import output_scale

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

#: Attributes of a DN array that the reflectance output must not carry over.
DN_ATTRS = ("scale_factor", "add_offset", "_FillValue", "units")


def _band_names(da: xr.DataArray, band_dim: str) -> list[str] | None:
    """The bands' names: the band coordinate when it holds names, else rioxarray's ``long_name``
    attribute (the file's band descriptions) when it has one per band."""
    names = da.coords[band_dim].values.tolist() if band_dim in da.coords else None
    if names and all(isinstance(n, str) for n in names):
        return names
    long_name = da.attrs.get("long_name")
    if not isinstance(long_name, list | tuple) or len(long_name) != da.sizes[band_dim]:
        return None
    return [str(n) for n in long_name] if all(isinstance(n, str) and n for n in long_name) else None


def _canonical(name: str) -> str:
    """A Sentinel-2 band name for any spelling of one ("red", "b4"), else the name itself."""
    try:
        return canonical_band_name(name)
    except ValueError:
        return name


def _select_bands(da: xr.DataArray, band_dim: str, upscaler: Upscaler) -> xr.DataArray:
    """The model's bands, by name when the array names them (``_band_names``), else by count, with a
    warning that they are taken as the model's bands in order."""
    names = _band_names(da, band_dim)
    if names is not None and band_dim in da.coords and names != da.coords[band_dim].values.tolist():
        da = da.assign_coords({band_dim: names})
    if names:
        canonical = {_canonical(n): n for n in names}
        missing = [b for b in upscaler.bands if _canonical(b) not in canonical]
        if missing:
            raise ValueError(
                f"model {upscaler.name} needs bands {', '.join(upscaler.bands)}; the array lacks "
                f"{', '.join(missing)} (has {', '.join(map(str, names))})"
            )
        return da.sel({band_dim: [canonical[_canonical(b)] for b in upscaler.bands]})
    if da.sizes[band_dim] != len(upscaler.bands):
        raise ValueError(
            f"model {upscaler.name} needs {len(upscaler.bands)} bands ({', '.join(upscaler.bands)}), "
            f"the array has {da.sizes[band_dim]} along {band_dim!r}"
        )
    log.warning(
        "the array's bands have no names (no band names along %r, no long_name); taken as %s, the bands of "
        "model %s, in order", band_dim, ", ".join(upscaler.bands), upscaler.name,
    )  # fmt: skip
    return da


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


def _usable(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Per-band validity ``(C, h, w)``: not NaN/inf and not the nodata value."""
    usable = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if nodata is not None:
        usable &= values != nodata
    return usable


def _band_means(da: xr.DataArray, nodata: float | None, scaling: ReflectanceScaling) -> np.ndarray:
    """Per-band mean reflectance of the valid values, from the centres of k x k cells as in
    ``RasterReader.read_decimated`` (what masked values show the model); raises if nothing is valid."""
    _, height, width = da.shape
    k = max(1, -(-max(height, width) // STATS_READ_SIDE))
    rows = np.minimum(np.arange(-(-height // k)) * k + k // 2, height - 1)
    cols = np.minimum(np.arange(-(-width // k)) * k + k // 2, width - 1)
    values = np.asarray(da.isel(y=rows, x=cols).values)
    usable = _usable(values, nodata)
    if not usable.any() and not _usable(np.asarray(da.values), nodata).any():
        raise ValueError("every pixel is nodata or NaN")
    reflectance = scaling.to_reflectance(np.where(usable, values, 0))
    return np.array(
        [r[u].mean() if u.any() else 0.0 for r, u in zip(reflectance, usable, strict=True)], np.float32
    )


@dataclass(frozen=True)
class _RegionRun:
    """Computes an HR region of the scene from the LR pixels it depends on (``StreamPlan.lr_bounds``)."""

    size: tuple[int, int]  # LR scene (height, width)
    scale: float
    tile_fn: TileFn
    tile_size: int
    overlap: int
    batch_size: int
    channels: int  # bands; the output has ``channels`` (mean) or ``2 channels`` (mean, std)
    out_channels: int
    fill: np.ndarray
    nodata: float | None
    scaling: ReflectanceScaling

    def __call__(self, lr: np.ndarray, origin: tuple[int, int], region: Region) -> np.ndarray:
        (height, width), (r0, c0) = self.size, origin
        out_h, out_w = round(height * self.scale), round(width * self.scale)
        y0, y1, x0, x1 = region
        usable = _usable(np.asarray(lr), self.nodata)
        reflectance = self.scaling.to_reflectance(np.where(usable, lr, 0))
        reflectance = np.where(usable, reflectance, self.fill[:, None, None])
        out = np.empty((self.out_channels, y1 - y0, x1 - x0), np.float32)

        def read(t: Tile) -> np.ndarray:
            return reflectance[:, t.row - r0 : t.row - r0 + t.height, t.col - c0 : t.col - c0 + t.width]

        def write(row: int, col: int, block: np.ndarray) -> None:
            _, h, w = block.shape
            top, left, bottom, right = max(row, y0), max(col, x0), min(row + h, y1), min(col + w, x1)
            if top < bottom and left < right:
                out[:, top - y0 : bottom - y0, left - x0 : right - x0] = block[
                    :, top - row : bottom - row, left - col : right - col
                ]

        upscale_stream(
            read, write, height, width, self.tile_fn, self.scale, self.tile_size, self.overlap,
            out_channels=self.out_channels, batch_size=self.batch_size, region=region,
        )  # fmt: skip
        rows = lr_pixels(y0, y1 - y0, height, out_h) - r0
        cols = lr_pixels(x0, x1 - x0, width, out_w) - c0
        masked = ~usable[:, rows][:, :, cols]  # each HR value takes the validity of its LR pixel's band
        for part in range(self.out_channels // self.channels):
            out[part * self.channels : (part + 1) * self.channels][masked] = np.nan
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


def upscale_dataarray(
    da: xr.DataArray,
    model: str | Path | Upscaler = "s2-rgbn-x4-fast",
    scale: float | None = None,
    samples: int = 1,
    steps: int | None = None,
    seed: int = DEFAULT_SEED,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    band_dim: str = "band",
    scaling: ReflectanceScaling | None = None,
    device: str = "cpu",
) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """Super-resolve a ``(band, y, x)`` DataArray; returns float32 reflectance on the finer grid.

    DN follow the convention of files (``satsr.io.bands.dn_scaling``): 8-bit arrays are DN / 255, other
    integers Sentinel-2's DN / 10000, unless ``scale_factor``/``add_offset`` say otherwise; floats are
    reflectance; ``scaling`` overrides it. NaN and rioxarray's nodata value are masked per band (a pixel
    is masked only where every band is): NaN in the output. ``samples > 1`` (diffusion models) returns
    ``(mean, std)``, the std per pixel and band. ``scale``: the model's own by default; a
    continuous-scale model takes any real one in [1, 10], and the result has ``round(y * scale) x
    round(x * scale)`` pixels on the same bounds. A dask-backed array gives a lazy, dask-backed result.
    """
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    if set(da.dims) != {band_dim, "y", "x"}:
        raise ValueError(f"expected dims ({band_dim!r}, 'y', 'x'), got {da.dims}")
    if samples < 1 or (samples > 1 and not upscaler.stochastic):
        raise ValueError(f"samples={samples}: needs >= 1, and > 1 only with a diffusion model")
    s = output_scale(upscaler, scale)
    da = _select_bands(da.transpose(band_dim, "y", "x"), band_dim, upscaler)
    _, height, width = da.shape
    if height == 0 or width == 0:
        raise ValueError("the array is empty")
    scaling, nodata = scaling or array_scaling(da), _nodata(da)
    tile_size, overlap = fit_tiling(tile_size, overlap, height, width)
    grid = SceneGrid((height, width), s)
    channels = len(upscaler.bands)
    tile_fn = sampling_tile_fn(upscaler, samples, steps, seed, grid if upscaler.continuous else None)
    run = _RegionRun(
        (height, width), s, tile_fn, tile_size, overlap, batch_size, channels,
        (2 if samples > 1 else 1) * channels, _band_means(da, nodata, scaling), nodata, scaling,
    )  # fmt: skip
    plan = StreamPlan.build(height, width, s, run.tile_size, run.overlap, DEFAULT_RAMP)
    out_h, out_w = grid.out_size
    if da.chunks is not None:
        out = _lazy(da.data, run, plan)
    else:
        out = run(np.asarray(da.values), (0, 0), (0, out_h, 0, out_w))
    return _results(da, out, upscaler, s, seed, samples, band_dim)


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
