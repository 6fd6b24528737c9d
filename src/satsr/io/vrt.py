"""A VRT that stacks bands of rasters on one grid under band names (for products, STAC Items and bands
held in several files), bands of coarser grids repeated onto the finest."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

import rasterio
import rasterio.errors
from affine import Affine
from rasterio.crs import CRS

log = logging.getLogger("satsr.io")

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64"}  # fmt: skip


class VRTError(ValueError):
    """A band file that cannot be stacked (unreadable, or on another grid)."""


def vrt_header(width: int, height: int, crs: CRS | None, transform: Affine) -> str:
    """The opening of a VRT on a grid: size, SRS and geotransform (close with ``</VRTDataset>``)."""
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs is not None else ""
    geo = f"<GeoTransform>{', '.join(repr(v) for v in transform.to_gdal())}</GeoTransform>"
    return f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}{geo}'


@dataclass(frozen=True)
class _Band:
    name: str
    path: str
    index: int  # 1-based, in its file
    width: int
    height: int
    crs: CRS | None
    transform: Affine
    dtype: str
    nodata: float | None

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)


def _open_band(name: str, source: str | tuple[str, int]) -> _Band:
    path, index = (source, 1) if isinstance(source, str) else source
    try:
        with rasterio.open(path) as src:
            if not 1 <= index <= src.count:
                raise VRTError(f"band {name}: {path} has no band {index}")
            return _Band(name, path, index, src.width, src.height, src.crs, src.transform,
                         src.dtypes[index - 1], src.nodatavals[index - 1])  # fmt: skip
    except rasterio.errors.RasterioIOError as err:
        raise VRTError(f"band {name}: unreadable raster {path} ({err})") from err


def _georeferenced(bands: list[_Band]) -> list[_Band]:
    """``bands`` as they are when any is georeferenced; when none is (no CRS, no geotransform), taken to
    cover the same bounds, their pixel sizes in the ratio of their sizes (refused when that ratio is not
    one whole number for both axes), with a warning saying so."""
    if any(b.crs is not None or not b.transform.is_identity for b in bands):
        return bands
    widest = max(bands, key=lambda b: b.width)
    placed = []
    for band in bands:
        ratio = _whole(widest.width / band.width)
        if ratio is None or band.height * ratio != widest.height:
            raise VRTError(
                f"bands {widest.name} ({widest.width} x {widest.height}) and {band.name} ({band.width} x "
                f"{band.height}) are not georeferenced and their sizes are not in a whole ratio"
            )
        placed.append(replace(band, transform=Affine.scale(ratio)))
    if len({b.width for b in bands}) > 1:
        log.warning(
            "the bands are not georeferenced: taken to cover the same ground, %s",
            ", ".join(f"{b.name} {b.width} x {b.height}" for b in bands),
        )
    return placed


def _whole(x: float) -> int | None:
    """``x`` as an integer when it is one (to a thousandth), else None."""
    return round(x) if abs(x - round(x)) < 1e-3 else None


def _source_rect(band: _Band, fine: _Band) -> tuple[int, int, int, int]:
    """The window ``(col, row, width, height)`` of ``band``'s pixels under the finest grid ``fine``: a
    whole number of its pixels, its pixels a whole number of the fine ones, both grids' lines aligned."""
    ratio = _whole(band.resolution / fine.resolution)
    col = _whole((fine.transform.c - band.transform.c) / band.transform.a)
    row = _whole((fine.transform.f - band.transform.f) / band.transform.e)
    rotated = band.transform.b or band.transform.d or fine.transform.b or fine.transform.d
    square = abs(abs(band.transform.e) - band.resolution) < 1e-9 * band.resolution
    if band.crs != fine.crs:
        raise VRTError(f"band {band.name} is in another CRS than band {fine.name} ({band.crs} vs {fine.crs})")
    if rotated or not square or ratio is None or ratio < 1 or col is None or row is None:
        raise VRTError(
            f"band {band.name} ({band.resolution:g} m pixels) is not on a grid aligned with band "
            f"{fine.name}'s ({fine.resolution:g} m): the pixel sizes must be whole multiples and the grid "
            "lines must meet"
        )
    width, height = fine.width / ratio, fine.height / ratio
    inside = col >= 0 and row >= 0 and col + width <= band.width and row + height <= band.height
    if width != int(width) or height != int(height) or not inside:
        raise VRTError(
            f"band {band.name}'s grid ({band.width} x {band.height} pixels of {band.resolution:g} m) does "
            f"not cover band {fine.name}'s ({fine.width} x {fine.height} of {fine.resolution:g} m) in whole "
            f"{band.resolution:g} m pixels: crop both to the same bounds on the coarser grid"
        )
    return col, row, int(width), int(height)


def stack_vrt(files: Mapping[str, str | tuple[str, int]], nodata: float | None = None) -> str:
    """VRT XML (openable by rasterio) with band i = the i-th source (a file's band 1, or ``(file, band)``),
    described by its name, on the finest grid among them.

    Bands of coarser grids (Sentinel-2's 20 m bands beside its 10 m ones) have each pixel repeated over
    the fine pixels it covers (nearest: nothing interpolated, their native values kept); their pixel
    size must be a whole multiple of the finest and their grid lines must meet its own, else a
    ``VRTError`` names the band. Every file is opened here, so a corrupt or mismatched one is named
    before any pixel is read. ``nodata`` defaults to each band's own.
    """
    bands = _georeferenced([_open_band(name, source) for name, source in files.items()])
    fine = min(bands, key=lambda b: b.resolution)  # the first of the finest
    parts = [vrt_header(fine.width, fine.height, fine.crs, fine.transform)]
    for i, band in enumerate(bands, start=1):
        col, row, width, height = _source_rect(band, fine)
        value = band.nodata if nodata is None else nodata
        no = f"<NoDataValue>{value!r}</NoDataValue>" if value is not None else ""
        parts.append(
            f'<VRTRasterBand dataType="{_GDAL_TYPES.get(band.dtype, "Float32")}" band="{i}">'
            f"<Description>{escape(band.name)}</Description>{no}<SimpleSource>"
            f'<SourceFilename relativeToVRT="0">{escape(band.path)}</SourceFilename>'
            f"<SourceBand>{band.index}</SourceBand>"
            f'<SrcRect xOff="{col}" yOff="{row}" xSize="{width}" ySize="{height}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{fine.width}" ySize="{fine.height}"/>'
            "</SimpleSource></VRTRasterBand>"
        )
    parts.append("</VRTDataset>")
    return "".join(parts)
