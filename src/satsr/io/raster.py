"""Reading Sentinel-2 rasters as reflectance with an explicit validity mask; writing SR outputs.

Any raster GDAL reads (GeoTIFF, JP2, VRT) works. Bands are picked by name (from the band
descriptions) or by 1-based index. Nodata and NaN never become numbers: they are returned as
a mask, and written back as the output's nodata value.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from satsr.io.bands import ReflectanceScaling, canonical_band_name


class RasterError(ValueError):
    """A raster that cannot be used, with a message naming the problem."""


@dataclass(frozen=True)
class RasterMeta:
    """What an output needs from its input: grid, dtype, band names, nodata, DN scaling."""

    crs: CRS | None
    transform: Affine
    height: int
    width: int
    dtype: np.dtype
    band_names: tuple[str, ...]
    nodata: float | None
    scaling: ReflectanceScaling = field(default_factory=ReflectanceScaling)


def _band_indexes(
    src: rasterio.io.DatasetReader, names: Sequence[str | None], bands: Sequence[str | int] | None
) -> list[int]:
    """1-based indexes of ``bands`` (names or indexes); ``names`` are the file's canonical band names."""
    if bands is None:
        return list(range(1, src.count + 1))
    indexes: list[int] = []
    for band in bands:
        if isinstance(band, int) or (isinstance(band, str) and band.isdigit()):
            index = int(band)
            if not 1 <= index <= src.count:
                raise RasterError(f"{src.name}: band index {index} out of range 1..{src.count}")
            indexes.append(index)
            continue
        wanted = canonical_band_name(str(band))
        if wanted not in names:
            raise RasterError(f"{src.name}: band {wanted} not found; the file's bands are {names}")
        indexes.append(names.index(wanted) + 1)
    return indexes


def _safe_descriptions(src: rasterio.io.DatasetReader) -> list[str | None]:
    """The file's band descriptions as canonical S2 band names, None where not an S2 band name."""
    out: list[str | None] = []
    for d in src.descriptions:
        try:
            out.append(canonical_band_name(d) if d else None)
        except ValueError:
            out.append(None)
    return out


def read_raster(
    path: str | Path, bands: Sequence[str | int] | None = None, scaling: ReflectanceScaling | None = None
) -> tuple[np.ndarray, np.ndarray, RasterMeta]:
    """Read bands as float32 reflectance (C, H, W) plus a boolean validity mask (H, W).

    A pixel is invalid when any selected band is nodata, NaN or masked by GDAL.
    """
    path = Path(path)
    if not path.exists():
        raise RasterError(f"{path}: no such file")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise RasterError(f"{path}: not a readable raster ({err})") from err
    with src:
        names = _safe_descriptions(src)
        indexes = _band_indexes(src, names, bands)
        dn = src.read(indexes)
        valid = np.all(src.read_masks(indexes) > 0, axis=0)
        if np.issubdtype(dn.dtype, np.floating):
            valid &= np.all(np.isfinite(dn), axis=0)
        if scaling is None:
            scaling = (
                ReflectanceScaling() if np.issubdtype(dn.dtype, np.integer) else ReflectanceScaling.identity()
            )
        meta = RasterMeta(
            crs=src.crs,
            transform=src.transform,
            height=src.height,
            width=src.width,
            dtype=np.dtype(dn.dtype),
            band_names=tuple(names[i - 1] or f"band{i}" for i in indexes),
            nodata=src.nodata,
            scaling=scaling,
        )
    if not valid.any():
        raise RasterError(f"{path}: every pixel is nodata or NaN")
    reflectance = scaling.to_reflectance(np.where(valid, dn, 0))
    return reflectance, valid, meta


def output_nodata(meta: RasterMeta) -> float:
    """The nodata value an output uses: the input's, NaN for floats, 0 (the S2 convention) otherwise."""
    if meta.nodata is not None:
        return meta.nodata
    return float("nan") if np.issubdtype(meta.dtype, np.floating) else 0.0


def write_raster(
    path: str | Path,
    reflectance: np.ndarray,
    valid: np.ndarray,
    meta: RasterMeta,
    scale: float,
    tags: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an SR result on the input's bounds with pixel size / ``scale``, atomically.

    The file is written next to its destination and renamed into place, so a failure leaves
    no partial output. Pixels outside ``valid`` get the output nodata value.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise RasterError(f"{path}: output exists (pass overwrite=True / --overwrite to replace it)")
    bands, height, width = reflectance.shape
    transform = meta.transform @ Affine.scale(meta.width / width, meta.height / height)
    nodata = output_nodata(meta)
    data = meta.scaling.to_dn(reflectance, meta.dtype)
    if np.issubdtype(meta.dtype, np.integer):
        # A valid pixel must never read back as nodata: nudge it one DN away.
        nudge = 1 if nodata < np.iinfo(meta.dtype).max else -1
        data[(data == nodata) & valid[None]] = np.array(nodata + nudge).astype(meta.dtype)
    data[:, ~valid] = np.array(nodata).astype(meta.dtype)
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": meta.dtype.name,
        "crs": meta.crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3 if np.issubdtype(meta.dtype, np.floating) else 2,
        "BIGTIFF": "IF_SAFER",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with rasterio.open(tmp_name, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(meta.band_names, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(SCALE=str(scale), **dict(tags or {}))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
