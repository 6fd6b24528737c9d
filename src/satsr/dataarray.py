"""``satsr.upscale_dataarray``: super-resolution of (rio)xarray DataArrays, lazy dask-backed ones included.

The array is read window by window (a dask-backed array computes only the windows the tiling asks
for), run through the same streamed tiling as ``satsr upscale``, and returned on the finer grid:
coordinates of the HR pixel centres over the same bounds, and with rioxarray, the CRS and the
transform scaled by 1 / scale. Needs the optional dependencies: ``pip install satsr[xarray]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from satsr.io.bands import ReflectanceScaling, canonical_band_name
from satsr.io.tiling import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    Tile,
    lr_pixels,
    upscale_stream,
)
from satsr.models.registry import DEFAULT_SEED, SceneGrid, Upscaler, load, sampling_tile_fn
from satsr.pipelines import output_scale

if TYPE_CHECKING:
    import xarray as xr


def _select_bands(da: xr.DataArray, band_dim: str, upscaler: Upscaler) -> xr.DataArray:
    """The model's bands, by name when the band coordinate holds names, else by count."""
    names = da.coords[band_dim].values.tolist() if band_dim in da.coords else None
    if names and all(isinstance(n, str) for n in names):
        canonical = {}
        for n in names:
            try:
                canonical[canonical_band_name(n)] = n
            except ValueError:
                canonical[n] = n
        missing = [b for b in upscaler.bands if b not in canonical]
        if missing:
            raise ValueError(
                f"model {upscaler.name} needs bands {', '.join(upscaler.bands)}; the array lacks "
                f"{', '.join(missing)} (has {', '.join(map(str, names))})"
            )
        return da.sel({band_dim: [canonical[b] for b in upscaler.bands]})
    if da.sizes[band_dim] != len(upscaler.bands):
        raise ValueError(
            f"model {upscaler.name} needs {len(upscaler.bands)} bands ({', '.join(upscaler.bands)}), "
            f"the array has {da.sizes[band_dim]} along {band_dim!r}"
        )
    return da


def _hr_coords(coord: np.ndarray, out: int) -> np.ndarray:
    """Centres of ``out`` pixels evenly dividing the extent of the pixels whose centres are ``coord``
    (regular spacing): for an integer scale, the sub-pixels of each pixel."""
    step = float(coord[1] - coord[0]) if len(coord) > 1 else 1.0
    first_edge = float(coord[0]) - step / 2
    return first_edge + (np.arange(out) + 0.5) * (step * len(coord) / out)


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

    Float arrays are reflectance; integer arrays are DN converted with ``scaling`` (default
    Sentinel-2's DN / 10000). NaN pixels and rioxarray's nodata value are masked: NaN in the
    output. ``samples > 1`` (diffusion models) returns ``(mean, std)``, the std per pixel and band.
    ``scale``: the model's own by default; a continuous-scale model takes any real one in [1, 10],
    and the result has ``round(y * scale) x round(x * scale)`` pixels on the same bounds.
    """
    import xarray as xr

    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    if set(da.dims) != {band_dim, "y", "x"}:
        raise ValueError(f"expected dims ({band_dim!r}, 'y', 'x'), got {da.dims}")
    if samples < 1 or (samples > 1 and not upscaler.stochastic):
        raise ValueError(f"samples={samples}: needs >= 1, and > 1 only with a diffusion model")
    s = output_scale(upscaler, scale)
    da = _select_bands(da.transpose(band_dim, "y", "x"), band_dim, upscaler)
    integer = np.issubdtype(da.dtype, np.integer)
    scaling = scaling or (ReflectanceScaling() if integer else ReflectanceScaling.identity())
    nodata = da.rio.nodata if hasattr(da, "rio") else None
    _, height, width = da.shape
    valid_lr = np.ones((height, width), bool)
    fill = None
    if height == 0 or width == 0:
        raise ValueError("the array is empty")

    def read(tile: Tile) -> np.ndarray:
        nonlocal fill
        window = np.asarray(
            da.isel(
                y=slice(tile.row, tile.row + tile.height), x=slice(tile.col, tile.col + tile.width)
            ).values
        )
        valid = np.all(np.isfinite(window), axis=0) if not integer else np.ones(window.shape[1:], bool)
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
            valid &= np.all(window != nodata, axis=0)
        valid_lr[tile.row : tile.row + tile.height, tile.col : tile.col + tile.width] = valid
        reflectance = scaling.to_reflectance(np.where(valid, window, 0))
        if fill is None:  # what masked pixels show the network; they are masked again in the output
            fill = reflectance[:, valid].mean(axis=1) if valid.any() else np.zeros(len(window), np.float32)
        reflectance[:, ~valid] = fill[:, None]
        return reflectance

    channels = len(upscaler.bands)
    grid = SceneGrid((height, width), s)
    out_h, out_w = grid.out_size
    out = np.empty(((2 if samples > 1 else 1) * channels, out_h, out_w), np.float32)

    def write(row: int, col: int, block: np.ndarray) -> None:
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block

    upscale_stream(
        read, write, height, width,
        sampling_tile_fn(upscaler, samples, steps, seed, grid if upscaler.continuous else None),
        s, tile_size, overlap, out_channels=out.shape[0], batch_size=batch_size,
    )  # fmt: skip
    if not valid_lr.any():
        raise ValueError("every pixel is nodata or NaN")
    out[:, ~valid_lr[np.ix_(lr_pixels(0, out_h, height, out_h), lr_pixels(0, out_w, width, out_w))]] = np.nan
    coords: dict[str, Any] = {
        band_dim: list(upscaler.bands),
        "y": _hr_coords(da["y"].values, out_h) if "y" in da.coords else np.arange(out_h),
        "x": _hr_coords(da["x"].values, out_w) if "x" in da.coords else np.arange(out_w),
    }
    provenance = {"satsr_model": upscaler.name, "satsr_scale": s, "satsr_seed": seed}
    provenance["satsr_samples"] = samples
    attrs = {**da.attrs, **provenance}
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
