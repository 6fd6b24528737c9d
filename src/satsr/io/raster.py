"""Reading Sentinel-2 rasters as reflectance with an explicit validity mask; writing SR outputs.

Any raster GDAL reads (GeoTIFF, JP2, VRT) works. Bands are picked by name (from the band
descriptions) or by 1-based index. Nodata and NaN never become numbers: they are returned as
a mask, and written back as the output's nodata value.

The nodata rule (rasterio's ``dataset_mask``, GDAL's ``UNIFIED_SRC_NODATA``): a pixel is nodata only
where every band is nodata (or NaN, or masked by GDAL). A band that is nodata where the others are
not (an 8-bit picture's saturated 255 when its nodata is 255, a Sentinel-2 band's 0 at a swath edge)
keeps that per-band validity: ``read_bands`` gives it as a ``(C, h, w)`` mask, and ``RasterWriter``
writes nodata in that band only. No valid output value ever equals the nodata value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.shutil import copy as rio_copy
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from satsr.io.bands import ReflectanceScaling, canonical_band_name, dn_scaling
from satsr.io.dates import DATE_SOURCE_TAG
from satsr.io.safe import SCL_MASKED_CLASSES, SafeError, is_safe, read_safe
from satsr.io.stac import StacInputError, is_stac_item, read_item_input


class RasterError(ValueError):
    """A raster that cannot be used, with a message naming the problem."""


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, transform and size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, src: rasterio.io.DatasetReader) -> Grid:
        return cls(src.crs, src.transform, src.width, src.height)

    def matches(self, src: rasterio.io.DatasetReader) -> bool:
        same_size = (src.width, src.height) == (self.width, self.height)
        return same_size and src.crs == self.crs and src.transform.almost_equals(self.transform)


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

    def refined(self, scale: float) -> RasterMeta:
        """The same bounds on a grid ``scale`` times finer: ``round(height * scale)`` x
        ``round(width * scale)`` pixels (pixel size / scale for an integer scale)."""
        height, width = round(self.height * scale), round(self.width * scale)
        return dataclasses.replace(
            self, transform=self.transform @ Affine.scale(self.width / width, self.height / height),
            height=height, width=width,
        )  # fmt: skip


def _band_indexes(
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


#: A Sentinel-2 band name as a token of a file name (``..._10m_B02_B03_B04_B08.tif``).
_BAND_TOKEN = re.compile(r"^B(\d{1,2}|8A)$", re.IGNORECASE)


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


#: Largest side of the decimated read used for per-band statistics of a whole raster.
STATS_READ_SIDE = 1024
#: Columns a decimated read reads at a time (a row of blocks that wide: ~40 MB for 4 bands of 256 rows).
DECIMATED_READ_WIDTH = 4096


class RasterReader:
    """An open raster read window by window as float32 reflectance plus a validity mask.

    A pixel is invalid when any selected band is nodata, NaN or masked by GDAL. Use as a context
    manager; ``read_raster`` reads a whole file at once.
    """

    def __init__(
        self,
        path: str | Path,
        bands: Sequence[str | int] | None = None,
        scaling: ReflectanceScaling | None = None,
        mask_clouds: bool = False,
        grid: Grid | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RasterError(f"{self.path}: no such file")
        self.scl: rasterio.io.DatasetReader | None = None
        self.extra_tags: dict[str, str] = {}
        source: str | Path = self.path
        if is_safe(self.path):  # a Sentinel-2 product: its 10 m bands through a VRT, scaled per its metadata
            try:
                product = read_safe(self.path)
                for band in bands or ():
                    if isinstance(band, str) and not band.isdigit():
                        product.vrt(
                            (canonical_band_name(band),)
                        )  # a clear error for 20/60 m or missing bands
                source = product.vrt()
            except (SafeError, ValueError) as err:
                raise RasterError(str(err)) from err
            scaling = scaling or product.scaling
            if mask_clouds:
                try:
                    self.scl = rasterio.open(product.scl_vrt())
                except (SafeError, rasterio.errors.RasterioIOError) as err:
                    raise RasterError(str(err)) from err
            self.extra_tags = {
                "PROCESSING_BASELINE": product.processing_baseline or "",
                "PRODUCT_LEVEL": product.level,
            }
            if product.start_time:
                self.extra_tags["ACQUISITION_DATE"] = product.start_time
                self.extra_tags[DATE_SOURCE_TAG] = f"SAFE metadata PRODUCT_START_TIME of {self.path.name}"
        elif is_stac_item(self.path):  # a STAC Item: its band assets through a VRT
            requested = [b for b in bands or () if isinstance(b, str) and not b.isdigit()]
            try:
                item = read_item_input(self.path, requested or None)
            except (StacInputError, ValueError) as err:
                raise RasterError(str(err)) from err
            source, scaling, self.extra_tags = item.vrt, scaling or item.scaling, dict(item.tags)
        if mask_clouds and self.scl is None:
            raise RasterError(
                f"{self.path}: cloud masking needs a Sentinel-2 L2A product (.SAFE) with its SCL"
            )
        try:
            self.src = rasterio.open(source)
        except rasterio.errors.RasterioIOError as err:
            raise RasterError(f"{self.path}: not a readable raster ({err})") from err
        names = file_band_names(self.src, self.path)
        self.indexes = _band_indexes(self.src, names, bands, self.path)
        self.named = all(names[i - 1] for i in self.indexes)  # every selected band has a name
        dtype = np.dtype(self.src.dtypes[self.indexes[0] - 1])
        if scaling is None:
            scaling = file_scaling(self.src, self.indexes, dtype)
        self.source_tags = {**self.src.tags(), **self.extra_tags}
        if grid is not None and not grid.matches(self.src):  # read as if on another raster's grid
            if self.src.crs is None or grid.crs is None:
                raise RasterError(
                    f"{self.path}: not georeferenced, so it cannot be put on the first input's grid"
                )
            self.src = WarpedVRT(
                self.src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                resampling=Resampling.bilinear,
            )  # fmt: skip
            if self.scl is not None:
                self.scl = WarpedVRT(
                    self.scl, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
                    resampling=Resampling.nearest,
                )  # fmt: skip
        self.meta = RasterMeta(
            crs=self.src.crs,
            transform=self.src.transform,
            height=self.src.height,
            width=self.src.width,
            dtype=dtype,
            band_names=tuple(names[i - 1] or f"band{i}" for i in self.indexes),
            nodata=self.src.nodata,
            scaling=scaling,
        )

    def tags(self) -> dict[str, str]:
        """The raster's dataset tags, plus what a product's metadata says (acquisition date...)."""
        return dict(self.source_tags)

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.src.close()
        if self.scl is not None:
            self.scl.close()

    def read_bands(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(C, h, w)`` (0 where not usable) and per-band validity ``(C, h, w)`` of a window
        (default: all): False where that band is nodata, NaN or masked by GDAL, or the pixel is cloud."""
        shape = None if out_shape is None else (len(self.indexes), *out_shape)
        try:
            dn = self.src.read(self.indexes, window=window, out_shape=shape)
            masks = self.src.read_masks(self.indexes, window=window, out_shape=shape)
        except rasterio.errors.RasterioIOError as err:
            raise RasterError(f"{self.path}: cannot read pixels ({err})") from err
        usable = masks > 0
        if np.issubdtype(dn.dtype, np.floating):
            usable &= np.isfinite(dn)
        usable &= self._clear(window, out_shape)
        return self.meta.scaling.to_reflectance(np.where(usable, dn, 0)), usable

    def read(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(C, h, w)`` (0 where invalid) and ``(h, w)``: True where every band is usable
        (complete pixels, what training and evaluation pairs need); ``read_bands`` keeps each band's."""
        reflectance, usable = self.read_bands(window, out_shape)
        complete = np.asarray(usable.all(axis=0))
        return np.where(complete, reflectance, np.float32(0)), complete

    def _clear(self, window: Window | None, out_shape: tuple[int, int] | None = None) -> np.ndarray | bool:
        """Where the scene classification shows no cloud, shadow or cirrus (True without masking)."""
        if self.scl is None:
            return True
        scl = self.scl.read(1, window=window, out_shape=out_shape)
        return ~np.isin(scl, SCL_MASKED_CLASSES)

    def read_usable(self, window: Window) -> np.ndarray:
        """Per-band validity ``(C, h, w)`` of a window, as ``read_bands`` gives it (pixel values are read
        only for float rasters)."""
        usable = self.src.read_masks(self.indexes, window=window) > 0
        if np.issubdtype(self.meta.dtype, np.floating):
            usable &= np.isfinite(self.src.read(self.indexes, window=window))
        return usable & self._clear(window)

    def read_valid(self, window: Window) -> np.ndarray:
        """``(h, w)``: True where every band of the window is usable (``read``'s mask)."""
        return np.asarray(self.read_usable(window).all(axis=0))

    def read_decimated(self, side: int, per_band: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``read()`` of the whole raster decimated by a whole factor ``k`` so its longer side is <= ``side``:
        the pixel at the centre of each k x k cell (clipped to the raster at the far edges);
        ``per_band``: ``read_bands()`` instead, with its ``(C, h, w)`` validity.

        Read at full resolution, one row of blocks and at most ``DECIMATED_READ_WIDTH`` columns at a
        time, then subsampled: GDAL's decimating read (``out_shape``) of a compressed tiled GeoTIFF
        measured about 50 times slower, and reading single rows 20 times slower.
        """
        height, width = self.meta.height, self.meta.width
        factor = max(1, -(-max(height, width) // side))
        read = self.read_bands if per_band else self.read
        if factor == 1:
            return read()
        rows = np.minimum(np.arange(-(-height // factor)) * factor + factor // 2, height - 1)
        cols = np.minimum(np.arange(-(-width // factor)) * factor + factor // 2, width - 1)
        block_h, block_w = self.src.block_shapes[0]
        span = max(1, DECIMATED_READ_WIDTH // block_w) * block_w  # whole blocks per window
        strips = []
        for group in np.split(rows, np.flatnonzero(np.diff(rows // block_h)) + 1):  # by row of blocks
            top, parts = int(group[0]), []
            for left in range(0, width, span):
                picked = cols[(cols >= left) & (cols < left + span)]
                window = Window(left, top, min(span, width - left), int(group[-1]) - top + 1)
                parts.append(tuple(a[..., picked - left] for a in read(window)))
            strips.append([np.concatenate(p, axis=-1)[..., group - top, :] for p in zip(*parts, strict=True)])
        reflectance, valid = (np.concatenate(a, axis=-2) for a in zip(*strips, strict=True))
        return reflectance, valid

    def band_means(self) -> np.ndarray:
        """Per-band mean reflectance of each band's valid values, from a decimated read; float32 ``(C,)``
        (0 for a band with none seen).

        Raises ``RasterError`` when no pixel is valid (checked window by window if the decimated
        read sees none, so a small valid patch is never missed).
        """
        reflectance, usable = self.read_decimated(STATS_READ_SIDE, per_band=True)
        if not usable.any():
            for _, window in self.src.block_windows(1):
                reflectance, usable = self.read_bands(window)
                if usable.any():
                    break
            else:
                raise RasterError(f"{self.path}: every pixel is nodata or NaN")
        return np.array(
            [band[ok].mean() if ok.any() else 0.0 for band, ok in zip(reflectance, usable, strict=True)],
            dtype=np.float32,
        )


def read_raster(
    path: str | Path, bands: Sequence[str | int] | None = None, scaling: ReflectanceScaling | None = None
) -> tuple[np.ndarray, np.ndarray, RasterMeta]:
    """Read bands as float32 reflectance (C, H, W) plus a boolean validity mask (H, W)."""
    with RasterReader(path, bands, scaling) as reader:
        reflectance, valid = reader.read()
    if not valid.any():
        raise RasterError(f"{path}: every pixel is nodata or NaN")
    return reflectance, valid, reader.meta


def file_scaling(src: rasterio.io.DatasetReader, indexes: list[int], dtype: np.dtype) -> ReflectanceScaling:
    """The DN scaling of ``satsr.io.bands.dn_scaling``: the GDAL band scale/offset the file declares (one
    for all selected bands), else the convention of its dtype."""
    scales = {src.scales[i - 1] for i in indexes}
    offsets = {src.offsets[i - 1] for i in indexes}
    if len(scales) == 1 and len(offsets) == 1:
        return dn_scaling(dtype, scales.pop(), offsets.pop())
    return dn_scaling(dtype)


def resumable_temp_path(path: str | Path) -> Path:
    """The temporary file of a resumable output: ``.NAME.part`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


def output_nodata(meta: RasterMeta) -> float:
    """The nodata value an output uses: the input's, NaN for floats, 0 (the S2 convention) otherwise."""
    if meta.nodata is not None:
        return meta.nodata
    return float("nan") if np.issubdtype(meta.dtype, np.floating) else 0.0


class RasterWriter:
    """An SR output on the input's bounds with pixel size / ``scale``, written block by block.

    Blocks go to a temporary file beside the destination, which is renamed into place only when
    the context exits without error (after conversion to a Cloud-Optimized GeoTIFF with overviews
    if ``cog``); on error the temporary file is removed, so a failure leaves no partial output.
    Pixels outside ``valid`` get the output nodata value; values are converted back to the input's
    dtype and DN convention.
    """

    def __init__(
        self,
        path: str | Path,
        meta: RasterMeta,
        scale: float,
        height: int,
        width: int,
        tags: Mapping[str, str] | None = None,
        overwrite: bool = False,
        cog: bool = False,
        auto_publish: bool = True,
        resumable: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise RasterError(f"{self.path}: output exists (pass overwrite=True / --overwrite to replace it)")
        self.meta, self.cog = meta, cog
        self.nodata = output_nodata(meta)
        self.profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": len(meta.band_names),
            "dtype": meta.dtype.name,
            "crs": meta.crs,
            "transform": meta.transform @ Affine.scale(meta.width / width, meta.height / height),
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "predictor": 3 if np.issubdtype(meta.dtype, np.floating) else 2,
            "BIGTIFF": "IF_SAFER",
        }
        self.tags = {"SCALE": str(scale), **dict(tags or {})}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumable = resumable
        if resumable:  # a fixed name, so that a rerun of the same job finds it
            self.tmp = resumable_temp_path(self.path)
            resume = resume and self.tmp.exists()
        else:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
            )
            os.close(fd)
            self.tmp, resume = Path(tmp_name), False
        self.auto_publish = auto_publish
        try:
            self.dst = (
                rasterio.open(self.tmp, "r+") if resume else rasterio.open(self.tmp, "w", **self.profile)
            )
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal file's mode

    def __enter__(self) -> RasterWriter:
        return self

    def write(self, row: int, col: int, reflectance: np.ndarray, valid: np.ndarray) -> None:
        """Write a block ``(C, h, w)`` of reflectance at ``(row, col)`` with its validity: ``(h, w)`` for
        whole pixels or ``(C, h, w)`` per band. Invalid values become nodata; a valid value that would
        read back as nodata is moved next to it (``_off_nodata``: one DN, or a tiny relative step)."""
        data = self.meta.scaling.to_dn(reflectance, self.meta.dtype)
        valid = np.broadcast_to(valid if valid.ndim == data.ndim else valid[None], data.shape)
        nodata = np.array(self.nodata).astype(self.meta.dtype)
        if not np.isnan(nodata):
            _off_nodata(data, valid, nodata)
        data[~valid] = nodata
        _, h, w = data.shape
        self.dst.write(data, window=Window(col, row, w, h))

    def flush(self) -> None:
        """Put every block written so far on disk (close and reopen), e.g. before recording progress."""
        self.dst.close()
        self.dst = rasterio.open(self.tmp, "r+")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt) and self.resumable:  # for a rerun
            self.dst.close()
            return
        try:
            if exc_type is None:
                for i, name in enumerate(self.meta.band_names, start=1):
                    self.dst.set_band_description(i, name)
                self.dst.update_tags(**self.tags)
                scaling = self.meta.scaling
                if np.issubdtype(self.meta.dtype, np.integer) and scaling != ReflectanceScaling.identity():
                    # GDAL's band scale/offset: reflectance = DN * scale + offset, for any reader.
                    count = len(self.meta.band_names)
                    self.dst.scales = [1 / scaling.quantification] * count
                    self.dst.offsets = [scaling.offset / scaling.quantification] * count
            self.dst.close()
            if exc_type is None and self.cog:
                self._to_cog()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
        elif self.auto_publish:
            self.publish()

    def publish(self) -> None:
        """Move the finished file into place (atomic rename); ``auto_publish`` does it on exit.

        Writers of files that belong together (an SR image and its uncertainty) publish only after
        all of them finished, so an error in one leaves none of them behind.
        """
        os.replace(self.tmp, self.path)

    def _to_cog(self) -> None:
        """Rewrite the temporary GeoTIFF as a COG (internal overviews, 256 px blocks)."""
        cog_tmp = self.tmp.with_suffix(".cog.part")
        try:
            rio_copy(
                self.tmp, cog_tmp, driver="COG", COMPRESS="DEFLATE",
                PREDICTOR="YES", BLOCKSIZE=256, OVERVIEWS="AUTO", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
            )  # fmt: skip
            os.replace(cog_tmp, self.tmp)
        finally:
            cog_tmp.unlink(missing_ok=True)


def write_raster(
    path: str | Path,
    reflectance: np.ndarray,
    valid: np.ndarray,
    meta: RasterMeta,
    scale: float,
    tags: Mapping[str, str] | None = None,
    overwrite: bool = False,
    cog: bool = False,
) -> Path:
    """Write a whole in-memory SR result with ``RasterWriter``; returns the path."""
    _, height, width = reflectance.shape
    if len(meta.band_names) != reflectance.shape[0]:
        raise ValueError(f"{len(meta.band_names)} band names for {reflectance.shape[0]} bands")
    with RasterWriter(path, meta, scale, height, width, tags, overwrite, cog) as writer:
        writer.write(0, 0, reflectance, valid)
    return writer.path


#: Relative distance below which GDAL takes a float for the nodata value: about 4.8e-7 for float32
#: (``ARE_REAL_EQUAL``), so a valid value there must move; 2**-19 (1.9e-6) is four times that.
FLOAT_NODATA_STEP = 2.0**-19


def _off_nodata(data: np.ndarray, valid: np.ndarray, nodata: np.ndarray) -> None:
    """Move, in place, valid values that a reader would take for ``nodata``: integers equal to it by one
    DN (down at the top of the range), floats within ``FLOAT_NODATA_STEP`` (relative; the smallest
    normal float at 0) of it to that distance, on their side of it."""
    dtype = data.dtype
    if np.issubdtype(dtype, np.integer):
        dn_step = 1 if nodata < np.iinfo(dtype).max else -1
        data[(data == nodata) & valid] = np.array(int(nodata) + dn_step).astype(dtype)
        return
    step = max(abs(float(nodata)) * FLOAT_NODATA_STEP, float(np.finfo(dtype).tiny))
    near = valid & (np.abs(data.astype(np.float64) - float(nodata)) < step)
    up, down = (np.array(float(nodata) + sign * step).astype(dtype) for sign in (1, -1))
    above = (data >= nodata) & np.isfinite(up) | ~np.isfinite(down)
    data[near & above], data[near & ~above] = up, down


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
