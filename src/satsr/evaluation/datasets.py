"""LR/HR evaluation pairs: real pairs from ``hr/`` + ``lr/`` folders, or HR rasters degraded on the fly.

Files are read as ``satsr upscale`` reads them: one rule for band names
(``satsr.io.inputs.file_band_names``) and one DN convention (``satsr.io.inputs.file_scaling``: the GDAL
scale/offset a file declares, else DN / 255 for 8-bit pictures, Sentinel-2's DN / 10000 for other
integers). Synthetic pairs follow the two protocols of ``satsr.data.degradation``:

* ``wald`` (Sentinel-2, Wald et al. 1997): reflectance, per-band Gaussian blur matched to
  the MSI MTF, decimation by an integer scale. Chosen by ``degradation="auto"`` for rasters whose
  bands are named Sentinel-2 bands (band descriptions, else ``_B02_B03_...`` in the file name) and for
  unnamed 4-band integer rasters other than 8-bit (read as B02, B03, B04, B08).
* ``bicubic`` (aerial RGB, as in LIIF / E2DiffSR): values in [0, 1] for 8-bit pictures, antialiased
  bicubic downsampling to ``h = floor(H / scale)``, any scale > 1.

The HR is cropped to ``H = round(h * scale)`` with ``h = floor(H0 / scale)``: divisible by an
integer scale, and for any scale the size for which LR size x scale rounds back to the HR size.
For integer scales the whole image is degraded once and cut into aligned tiles, so tiles see no
padding; for non-integer scales (no aligned LR grid) every HR tile is degraded on its own.

Nodata never enters a pair: tiles holding invalid pixels, or lying within ``NODATA_MARGIN_LR`` LR
pixels of one (the degradation blur spreads them), are skipped and counted in ``nodata_skipped``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import rasterio
import torch
from rasterio.enums import ColorInterp
from scipy import ndimage

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.io.bands import S2_BANDS, S2_RGBN, ReflectanceScaling, canonical_band_name
from satsr.io.grid import RasterError
from satsr.io.inputs import file_band_names, file_scaling
from satsr.io.raster import read_raster

logger = logging.getLogger(__name__)

#: Raster files an evaluation folder is searched for.
IMAGE_SUFFIXES = (".tif", ".tiff", ".jp2", ".png", ".jpg", ".jpeg")
#: Degradations of ``load_pairs``; "real" marks pairs read from ``hr/`` + ``lr/``.
DEGRADATIONS = ("auto", "wald", "bicubic")
REAL_PAIRS = "real"
#: Names given to the channels of plain RGB pictures.
RGB_BAND_NAMES = ("R", "G", "B")
#: Tiles closer than this (LR pixels) to an invalid pixel are skipped: the blur of the degradation
#: (3 sigma of the Wald Gaussian, about 1.6 LR px; the antialiased bicubic kernel, 2 LR px) reaches there.
NODATA_MARGIN_LR = 3
_SQUARE = np.ones((3, 3), dtype=bool)  # 8-connected dilation: a square margin


@dataclass(frozen=True)
class EvalPair:
    """One LR/HR pair: float32 (C, h, w) and (C, H, W) with H = round(h * scale)."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    bands: tuple[str, ...]  # channel names: Sentinel-2 band names, or R, G, B for pictures
    degradation: str = REAL_PAIRS  # "wald", "bicubic" or "real"
    source: str = ""  # the file the pair was cut from
    nodata_skipped: int = 0  # tiles of ``source`` left out because they hold or touch nodata
    revisits: np.ndarray | None = None  # (N, C, h, w) other acquisitions of the place, for fusion methods
    dt_days: tuple[float, ...] = ()  # per revisit: target date minus its date
    kind: str = ""  # the kind of place (land-cover class, scene), for per-kind figures


@dataclass(frozen=True)
class _RasterKind:
    """How to read one file: which bands, under which names, with which DN scaling."""

    indexes: tuple[int, ...]  # 1-based band indexes to read
    bands: tuple[str, ...]
    s2: bool  # Sentinel-2 reflectance (Wald's protocol applies)
    scaling: ReflectanceScaling


_Item = TypeVar("_Item")


class _SkipFile(Exception):
    """A file that does not fit the requested evaluation; logged and left out."""


def hr_size_for(size: int, scale: float) -> tuple[int, int]:
    """(LR, HR) side lengths for an HR side of ``size``: h = floor(size / scale), H = round(h * scale)."""
    low = math.floor(size / scale + 1e-9)
    return low, round(low * scale)


def _s2_names(src: rasterio.io.DatasetReader, path: Path) -> tuple[str, ...] | None:
    """Sentinel-2 band names by the rule ``satsr upscale`` follows (``satsr.io.inputs.file_band_names``:
    band descriptions, else ``_B02_B03...`` in the file name), when every band has one."""
    names = file_band_names(src, path)
    return tuple(n for n in names if n) if all(names) else None


def _inspect(path: Path, bands: Sequence[str] | int | None) -> _RasterKind:
    """Band names, selection and scaling of a raster, or ``_SkipFile`` when it lacks ``bands``."""
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise _SkipFile(f"not a readable raster ({err})") from err
    with src:
        keep = [i for i in range(1, src.count + 1) if src.colorinterp[i - 1] != ColorInterp.alpha]
        dtype = np.dtype(src.dtypes[0])
        names = _s2_names(src, path)
        scaling = file_scaling(src, keep, dtype)  # the DN convention of satsr upscale
        unnamed_rgbn = len(keep) == len(S2_RGBN) and np.issubdtype(dtype, np.integer) and dtype != np.uint8
        if names is None and unnamed_rgbn:
            names = S2_RGBN
            logger.warning(
                "%s: 4 integer bands without names (no band descriptions, none in its name), taken as %s",
                path, ", ".join(S2_RGBN),
            )  # fmt: skip
    if names is not None:
        kind = _RasterKind(tuple(keep), names, True, scaling)
    else:
        plain = RGB_BAND_NAMES if len(keep) == len(RGB_BAND_NAMES) else tuple(f"band{i}" for i in keep)
        kind = _RasterKind(tuple(keep), plain, False, scaling)
    return _select(kind, bands)


def _select(kind: _RasterKind, bands: Sequence[str] | int | None) -> _RasterKind:
    if bands is None:
        return kind
    if isinstance(bands, int):
        if len(kind.bands) != bands:
            raise _SkipFile(f"has {len(kind.bands)} bands ({', '.join(kind.bands)}), need {bands}")
        return kind
    wanted = tuple(canonical_band_name(b) if b.upper() not in RGB_BAND_NAMES else b.upper() for b in bands)
    missing = [b for b in wanted if b not in kind.bands]
    if missing:
        raise _SkipFile(f"lacks bands {', '.join(missing)} (has {', '.join(kind.bands)})")
    indexes = tuple(kind.indexes[kind.bands.index(b)] for b in wanted)
    return _RasterKind(indexes, wanted, kind.s2, kind.scaling)


def _resolve_degradation(kind: _RasterKind, degradation: str, scale: float) -> str:
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {DEGRADATIONS}, got {degradation!r}")
    chosen = ("wald" if kind.s2 else "bicubic") if degradation == "auto" else degradation
    if chosen == "wald":
        if not kind.s2 or any(b not in S2_BANDS for b in kind.bands):
            raise _SkipFile("Wald's protocol needs named Sentinel-2 bands (for their MTF)")
        if scale != round(scale):
            raise ValueError(
                f"Wald's protocol decimates by an integer factor; scale {scale} needs degradation='bicubic'"
            )
    return chosen


def _find_rasters(data: Path) -> list[Path]:
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such file or folder")
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{data}: no raster files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _spread(items: list[_Item], limit: int | None) -> list[_Item]:
    """At most ``limit`` items, evenly spaced over the list (so subfolders are all represented)."""
    if limit is None or len(items) <= limit:
        return items
    picks = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
    return [items[i] for i in picks]


def _degrade(hr: np.ndarray, scale: float, degradation: str, bands: tuple[str, ...]) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(hr))[None]
    with torch.no_grad():
        lr = wald_degrade(x, round(scale), bands) if degradation == "wald" else bicubic_degrade(x, scale)
    return lr[0].numpy().astype(np.float32)


def _tile_starts(size: int, tile: int | None) -> list[int]:
    """Non-overlapping tile starts along one axis (one tile spanning the axis without ``tile``)."""
    return [0] if tile is None else list(range(0, size - tile + 1, tile))


def _tiles(h: int, w: int, tile_lr: int | None) -> Iterator[tuple[int, int, int, int]]:
    """LR windows (row, col, height, width) of side ``tile_lr`` (the whole image when None)."""
    th, tw = (h, w) if tile_lr is None else (tile_lr, tile_lr)
    for row in _tile_starts(h, tile_lr):
        for col in _tile_starts(w, tile_lr):
            yield row, col, th, tw


def _lr_tile(crop: int | None, scale: float) -> int | None:
    if crop is None:
        return None
    tile_lr, _ = hr_size_for(crop, scale)
    if tile_lr < 1:
        raise ValueError(f"crop {crop} is smaller than one LR pixel at scale {scale}")
    return tile_lr


def _synthetic_pairs(
    path: Path, kind: _RasterKind, scale: float, degradation: str, crop: int | None
) -> list[EvalPair]:
    """Degrade one HR raster and cut it into pairs (see the module docstring)."""
    hr_full, valid, _ = read_raster(path, list(kind.indexes), kind.scaling)
    (h, big_h), (w, big_w) = hr_size_for(hr_full.shape[1], scale), hr_size_for(hr_full.shape[2], scale)
    if h < 1 or w < 1:
        raise _SkipFile(f"{hr_full.shape[1:]} px is too small for scale {scale}")
    hr_full, valid = hr_full[:, :big_h, :big_w], valid[:big_h, :big_w]
    margin = math.ceil(NODATA_MARGIN_LR * scale)
    usable = valid if valid.all() else ~ndimage.binary_dilation(~valid, _SQUARE, iterations=margin)
    integer = scale == round(scale)
    lr_full = _degrade(hr_full, scale, degradation, kind.bands) if integer else None
    pairs, skipped = [], 0
    for row, col, th, tw in _tiles(h, w, _lr_tile(crop, scale)):
        top, left = round(row * scale), round(col * scale)
        height, width = round(th * scale), round(tw * scale)
        window = (slice(top, top + height), slice(left, left + width))
        if not (usable if integer else valid)[window].all():
            skipped += 1
            continue
        hr = np.ascontiguousarray(hr_full[(slice(None), *window)])
        lr = (
            lr_full[:, row : row + th, col : col + tw]
            if lr_full is not None
            else _degrade(hr, scale, degradation, kind.bands)
        )
        name = path.stem if crop is None else f"{path.stem}_y{top}_x{left}"
        pairs.append(EvalPair(name, np.ascontiguousarray(lr), hr, kind.bands, degradation, str(path)))
    return _with_skipped(pairs, skipped, path)


def _with_skipped(pairs: list[EvalPair], skipped: int, path: Path) -> list[EvalPair]:
    if skipped:
        logger.warning("%s: %d tile(s) skipped because they hold or touch nodata", path, skipped)
    return [
        EvalPair(p.name, p.lr, p.hr, p.bands, p.degradation, p.source, nodata_skipped=skipped) for p in pairs
    ]


def _real_pairs(
    hr_path: Path, lr_path: Path, kind: _RasterKind, scale: float, crop: int | None
) -> list[EvalPair]:
    """Cut a real LR/HR pair of files into aligned tiles; HR must be round(LR size x scale) (+ < scale)."""
    hr_full, hr_valid, _ = read_raster(hr_path, list(kind.indexes), kind.scaling)
    lr_full, lr_valid, _ = read_raster(lr_path, list(kind.indexes), kind.scaling)
    h, w = lr_full.shape[1:]
    big_h, big_w = round(h * scale), round(w * scale)
    if not (0 <= hr_full.shape[1] - big_h < scale and 0 <= hr_full.shape[2] - big_w < scale):
        raise ValueError(
            f"{hr_path}: HR {hr_full.shape[1:]} does not match LR {lr_full.shape[1:]} x scale {scale}"
        )
    pairs, skipped = [], 0
    for row, col, th, tw in _tiles(h, w, _lr_tile(crop, scale)):
        top, left = round(row * scale), round(col * scale)
        window = (slice(top, top + round(th * scale)), slice(left, left + round(tw * scale)))
        if not (hr_valid[window].all() and lr_valid[row : row + th, col : col + tw].all()):
            skipped += 1
            continue
        name = hr_path.stem if crop is None else f"{hr_path.stem}_y{top}_x{left}"
        lr = np.ascontiguousarray(lr_full[:, row : row + th, col : col + tw])
        hr = np.ascontiguousarray(hr_full[(slice(None), *window)])
        pairs.append(EvalPair(name, lr, hr, kind.bands, REAL_PAIRS, str(hr_path)))
    return _with_skipped(pairs, skipped, hr_path)


def load_pairs(
    data: Path,
    scale: float,
    bands: Sequence[str] | int | None = None,
    degradation: str = "auto",
    crop: int | None = None,
    max_images: int | None = None,
) -> list[EvalPair]:
    """LR/HR pairs from ``data``: a folder with ``hr/`` and ``lr/`` (files matched by name), or HR
    rasters (a folder, searched recursively, or one file) degraded on the fly.

    ``bands``: band names to read (files lacking them are skipped), or a band count (files with
    another count are skipped); by default the band count of the first usable file. ``crop``: cut
    images into non-overlapping HR tiles of about this side (exactly, when divisible by the scale).
    ``max_images``: at most this many files, evenly spread over the sorted list of usable files
    (so every subfolder is represented); all tiles of those files are kept. Skipped files and
    tiles are logged.
    """
    data = Path(data)
    if not (math.isfinite(scale) and scale > 1):
        raise ValueError(f"scale must be a number > 1, got {scale}")
    if crop is not None and crop < 1:
        raise ValueError(f"crop must be a positive HR side in pixels, got {crop}")
    real = (data / "hr").is_dir() and (data / "lr").is_dir()
    if real and degradation not in ("auto", REAL_PAIRS):
        raise ValueError(f"{data} holds real hr/ + lr/ pairs; degradation={degradation!r} does not apply")
    candidates = _usable_files(data, real, bands, degradation, scale)
    pairs: list[EvalPair] = []
    for path, kind, chosen in _spread(candidates, max_images):
        try:
            if chosen == REAL_PAIRS:
                new = _real_pairs(path, data / "lr" / path.relative_to(data / "hr"), kind, scale, crop)
            else:
                new = _synthetic_pairs(path, kind, scale, chosen, crop)
        except (_SkipFile, RasterError) as err:
            logger.warning("%s: skipped: %s", path, err)
            continue
        pairs += new
    if not pairs:
        raise ValueError(f"{data}: no usable LR/HR pair (see the logged reasons)")
    return pairs


def _usable_files(
    data: Path, real: bool, bands: Sequence[str] | int | None, degradation: str, scale: float
) -> list[tuple[Path, _RasterKind, str]]:
    """Files with the wanted bands, how to read them and their degradation; the others are logged."""
    usable = []
    for path in _find_rasters(data / "hr" if real else data):
        try:
            kind = _inspect(path, bands)
            if real and not (data / "lr" / path.relative_to(data / "hr")).is_file():
                raise _SkipFile("no LR file of the same name in lr/")
            chosen = REAL_PAIRS if real else _resolve_degradation(kind, degradation, scale)
        except _SkipFile as err:
            logger.warning("%s: skipped: %s", path, err)
            continue
        if bands is None:
            bands = len(kind.bands)  # the first usable file fixes the band count
        usable.append((path, kind, chosen))
    return usable
