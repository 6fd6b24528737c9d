"""One way to open an input: a plain raster, a Sentinel-2 product (``.SAFE``, ``.SAFE.zip``), a STAC
Item, on its own grid or put on another one (revisits of other resolutions or projections).

``open_input`` returns what ``RasterReader`` needs, whatever the kind: the bands as one rasterio
dataset, the scene classification when clouds are masked, the DN scaling the input declares, and its
tags. Bands are named by one rule (``file_band_names``) and picked by name or 1-based index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from satsr.io.bands import ReflectanceScaling, canonical_band_name, dn_scaling
from satsr.io.dates import DATE_SOURCE_TAG, acquisition_time
from satsr.io.grid import Grid, RasterError
from satsr.io.safe import SafeError, SafeProduct, is_safe, read_safe
from satsr.io.stac_input import StacInputError, is_stac_item, read_item_input
from satsr.io.vrt import VRTError, stack_vrt

#: A Sentinel-2 band name as a token of a file name (``..._10m_B02_B03_B04_B08.tif``).
_BAND_TOKEN = re.compile(r"^B(\d{1,2}|8A)$", re.IGNORECASE)


@dataclass
class OpenedInput:
    """An open input as ``RasterReader`` reads it: the bands as one dataset, and what they are."""

    src: rasterio.io.DatasetReader | WarpedVRT  # a VRT for products and Items; on the grid asked for
    scl: rasterio.io.DatasetReader | WarpedVRT | None  # the L2A scene classification, when masking clouds
    indexes: list[int]  # 1-based, the selected bands
    names: tuple[str | None, ...]  # their canonical Sentinel-2 names (None: unnamed)
    dtype: np.dtype
    scaling: ReflectanceScaling  # the caller's, else what a product or Item declares, else the file's
    tags: dict[str, str]  # the dataset's tags plus what a product or Item says (acquisition time, ...)


def open_input(
    path: Path,
    bands: Sequence[str | int] | None = None,
    scaling: ReflectanceScaling | None = None,
    mask_clouds: bool = False,
    grid: Grid | None = None,
    more: Sequence[Path] = (),
) -> OpenedInput:
    """Open ``path`` (any kind) and select ``bands`` (names or 1-based indexes; default: all), with the
    scene classification when ``mask_clouds``, resampled onto ``grid`` when given and not its own
    (bilinear for the bands, nearest for the classification). ``more``: rasters holding more bands of
    the same place and date on coarser grids (a 20 m GeoTIFF beside a 10 m one), stacked with ``path``'s
    bands on the finest grid (``stack_files``)."""
    if not path.exists():
        raise RasterError(f"{path}: no such file")
    source: str | Path = path
    scl, declared = None, None
    extra: dict[str, str] = {}
    if more:
        if is_safe(path) or is_stac_item(path):
            raise RasterError(
                f"{path}: products and STAC Items hold their own bands; add bands to rasters only"
            )
        source, declared, extra = stack_files([path, *more])
    elif is_safe(path):
        product, source = _product(path, bands)
        declared, extra = product.scaling, _product_tags(product)
        scl = _scene_classification(product) if mask_clouds else None
    elif is_stac_item(path):
        requested = [b for b in bands or () if isinstance(b, str) and not b.isdigit()]
        try:
            item = read_item_input(path, requested or None)
        except (StacInputError, ValueError) as err:
            raise RasterError(str(err)) from err
        source, declared, extra = item.vrt, item.scaling, dict(item.tags)
    if mask_clouds and scl is None:
        raise RasterError(f"{path}: cloud masking needs a Sentinel-2 L2A product (.SAFE) with its SCL")
    try:
        src = rasterio.open(source)
    except rasterio.errors.RasterioIOError as err:
        raise RasterError(f"{path}: not a readable raster ({err})") from err
    names = file_band_names(src, path)
    indexes = band_indexes(src, names, bands, path)
    dtype = np.dtype(src.dtypes[indexes[0] - 1])
    scaling = scaling or declared or file_scaling(src, indexes, dtype)
    tags = {**src.tags(), **extra}
    if grid is not None and not grid.matches(src):  # read as if on another raster's grid
        if src.crs is None or grid.crs is None:
            raise RasterError(f"{path}: not georeferenced, so it cannot be put on the first input's grid")
        src = _warped(src, grid, Resampling.bilinear)
        scl = _warped(scl, grid, Resampling.nearest) if scl is not None else None
    return OpenedInput(src, scl, indexes, tuple(names[i - 1] for i in indexes), dtype, scaling, tags)


def stack_files(paths: Sequence[Path]) -> tuple[str, ReflectanceScaling, dict[str, str]]:
    """Every band of ``paths`` (rasters of one place and date, on grids that align: 10 m and 20 m bands)
    as one VRT on the finest grid, by band name (each file must name its bands, no name twice); the DN
    scaling they share and the first file's tags. One clear error for anything else."""
    sources: dict[str, tuple[str, int]] = {}
    scalings, dates, first_tags = set(), {}, dict[str, str]()
    for path in paths:
        if not path.exists():
            raise RasterError(f"{path}: no such file")
        try:
            with rasterio.open(path) as src:
                names = file_band_names(src, path)
                scalings.add(file_scaling(src, list(range(1, src.count + 1)), np.dtype(src.dtypes[0])))
                tags = src.tags()
        except rasterio.errors.RasterioIOError as err:
            raise RasterError(f"{path}: not a readable raster ({err})") from err
        first_tags = first_tags or tags
        if not all(names):
            raise RasterError(
                f"{path}: its bands have no Sentinel-2 names (band descriptions or _B05_B06_... in the file "
                "name): bands from several files are matched by name"
            )
        for index, name in enumerate(names, start=1):
            if name in sources:
                raise RasterError(f"{path}: band {name} is also in {sources[name][0]}")
            sources[str(name)] = (str(path), index)
        acquired = acquisition_time(tags, path.name)
        if acquired is not None:
            dates[path.name] = acquired.when.date()
    if len(scalings) > 1:
        raise RasterError(f"{', '.join(map(str, paths))}: the files declare different DN scalings")
    if len(set(dates.values())) > 1:
        listed = ", ".join(f"{name} {when}" for name, when in dates.items())
        raise RasterError(f"the files are of different dates ({listed}): bands of one acquisition only")
    try:
        vrt = stack_vrt(sources)
    except VRTError as err:
        raise RasterError(f"{paths[0]} + {', '.join(map(str, paths[1:]))}: {err}") from err
    return vrt, scalings.pop(), first_tags


def _product(path: Path, bands: Sequence[str | int] | None) -> tuple[SafeProduct, str]:
    """A Sentinel-2 product and the VRT of the ``bands`` it names (default: its 10 m bands); a band it
    does not hold, or a 60 m band, is a clear error."""
    try:
        product = read_safe(path)
        named = tuple(canonical_band_name(b) for b in bands or () if isinstance(b, str) and not b.isdigit())
        return product, product.vrt(named or None)
    except (SafeError, ValueError) as err:
        raise RasterError(str(err)) from err


def _product_tags(product: SafeProduct) -> dict[str, str]:
    """What a product's metadata adds to the tags: baseline, level and acquisition time."""
    tags = {"PROCESSING_BASELINE": product.processing_baseline or "", "PRODUCT_LEVEL": product.level}
    if product.start_time:
        tags["ACQUISITION_DATE"] = product.start_time
        tags[DATE_SOURCE_TAG] = f"SAFE metadata PRODUCT_START_TIME of {product.path.name}"
    return tags


def _scene_classification(product: SafeProduct) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(product.scl_vrt())
    except (SafeError, rasterio.errors.RasterioIOError) as err:
        raise RasterError(str(err)) from err


def _warped(src: rasterio.io.DatasetReader, grid: Grid, resampling: Resampling) -> WarpedVRT:
    return WarpedVRT(
        src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
        resampling=resampling,
    )  # fmt: skip


def file_band_names(src: rasterio.io.DatasetReader, path: str | Path) -> tuple[str | None, ...]:
    """The bands' canonical Sentinel-2 names, one rule for every command: from the band descriptions
    (None where one is not a band name), else, for a file with no descriptions at all, from the
    ``_B02_B03_B04_B08`` tokens of its file name when there is one per band; all None otherwise."""
    if any(src.descriptions):
        out: list[str | None] = []
        for d in src.descriptions:
            try:
                out.append(canonical_band_name(d) if d else None)
            except ValueError:
                out.append(None)
        return tuple(out)
    tokens = [canonical_band_name(t) for t in re.split(r"[_\-. ]", Path(path).name) if _BAND_TOKEN.match(t)]
    return tuple(tokens) if len(tokens) == src.count else (None,) * src.count


def band_indexes(
    src: rasterio.io.DatasetReader, names: Sequence[str | None], bands: Sequence[str | int] | None, path: Path
) -> list[int]:
    """1-based indexes of ``bands`` (names or indexes); ``names`` are the file's canonical band names."""
    if bands is None:
        return list(range(1, src.count + 1))
    indexes: list[int] = []
    for band in bands:
        if isinstance(band, int) or (isinstance(band, str) and band.isdigit()):
            index = int(band)
            if not 1 <= index <= src.count:
                raise RasterError(f"{path}: band index {index} out of range 1..{src.count}")
            indexes.append(index)
            continue
        wanted = canonical_band_name(str(band))
        if not any(names):
            raise RasterError(
                f"{path}: its {src.count} bands have no names (no band descriptions, none in the file name); "
                f"select them by 1-based index, e.g. --bands {' '.join(map(str, range(1, src.count + 1)))}"
            )
        if wanted not in names:
            listed = ", ".join(n or f"{i} (unnamed)" for i, n in enumerate(names, start=1))
            raise RasterError(f"{path}: band {wanted} not found; the file's bands are {listed}")
        indexes.append(names.index(wanted) + 1)
    return indexes


def file_scaling(src: rasterio.io.DatasetReader, indexes: list[int], dtype: np.dtype) -> ReflectanceScaling:
    """The DN scaling of ``satsr.io.bands.dn_scaling``: the GDAL band scale/offset the file declares (one
    for all selected bands), else the convention of its dtype."""
    scales = {src.scales[i - 1] for i in indexes}
    offsets = {src.offsets[i - 1] for i in indexes}
    if len(scales) == 1 and len(offsets) == 1:
        return dn_scaling(dtype, scales.pop(), offsets.pop())
    return dn_scaling(dtype)
