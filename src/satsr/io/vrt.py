"""A VRT that stacks single-band rasters on one grid under band names (for products and STAC Items)."""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

import rasterio
import rasterio.errors
from affine import Affine
from rasterio.crs import CRS

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64"}  # fmt: skip


class VRTError(ValueError):
    """A band file that cannot be stacked (unreadable, or on another grid)."""


def vrt_header(width: int, height: int, crs: CRS | None, transform: Affine) -> str:
    """The opening of a VRT on a grid: size, SRS and geotransform (close with ``</VRTDataset>``)."""
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs is not None else ""
    geo = f"<GeoTransform>{', '.join(repr(v) for v in transform.to_gdal())}</GeoTransform>"
    return f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}{geo}'


def stack_vrt(files: Mapping[str, str], nodata: float | None = None) -> str:
    """VRT XML (openable by rasterio) with band i = band 1 of the i-th file, described by its name.

    Every file is opened here, so a corrupt or mismatched one is named before any pixel is read.
    ``nodata`` defaults to the first file's.
    """
    grids = []
    for name, path in files.items():
        try:
            with rasterio.open(path) as src:
                grids.append((src.width, src.height, src.crs, src.transform, src.dtypes[0], src.nodata))
        except rasterio.errors.RasterioIOError as err:
            raise VRTError(f"band {name}: unreadable raster {path} ({err})") from err
        if grids[-1][:2] != grids[0][:2] or grids[-1][3] != grids[0][3]:
            raise VRTError(f"band {name} is not on the grid of band {next(iter(files))}")
    width, height, crs, transform, _, first_nodata = grids[0]
    nodata = first_nodata if nodata is None else nodata
    parts = [vrt_header(width, height, crs, transform)]
    for i, ((name, path), grid) in enumerate(zip(files.items(), grids, strict=True), start=1):
        no = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
        parts.append(
            f'<VRTRasterBand dataType="{_GDAL_TYPES.get(grid[4], "Float32")}" band="{i}">'
            f"<Description>{escape(name)}</Description>{no}<SimpleSource>"
            f'<SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
            "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
        )
    parts.append("</VRTDataset>")
    return "".join(parts)
