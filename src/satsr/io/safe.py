"""Sentinel-2 L1C / L2A products as ``.SAFE`` folders or ``.SAFE.zip`` archives.

A product is read through a VRT that stacks its band files (JP2) under their band names on the 10 m grid
(the 10 m bands by default; the 20 m bands when asked, each pixel repeated 2 x 2), so every reader in
``satsr.io`` handles it like any raster. The product metadata
(``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) gives the processing baseline, the quantification value
and the per-band RADIO_ADD_OFFSET (L1C) or BOA_ADD_OFFSET (L2A), applied when reading (baseline
04.00 and later store DN = reflectance x 10000 + 1000), and the acquisition start time.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

from satsr.io.bands import (
    S2_20M,
    S2_BANDS,
    S2_QUANTIFICATION_VALUE,
    S2_RGBN,
    ReflectanceScaling,
    processing_baseline_offset,
)
from satsr.io.vrt import VRTError, stack_vrt, vrt_header

#: Band order of ``band_id`` attributes in the product metadata.
METADATA_BAND_ORDER = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
#: The bands of a product satsr reads by default, at 10 m.
TEN_METRE_BANDS = S2_RGBN
#: The bands of a product satsr reads when asked: the 10 m and 20 m bands, on their native grids.
READ_BANDS = S2_RGBN + S2_20M
#: Scene classification classes masked by ``--mask-clouds``: no data, saturated or defective, cloud
#: shadows, cloud medium and high probability, thin cirrus (Sentinel-2 L2A product specification).
SCL_MASKED_CLASSES = (0, 1, 3, 8, 9, 10)
_BAND_FILE = re.compile(r"_(B\d[\dA])(?:_[126]0m)?\.jp2$", re.IGNORECASE)


class SafeError(ValueError):
    """A Sentinel-2 product that cannot be read as asked (missing band, bad metadata...)."""


@dataclass(frozen=True)
class SafeProduct:
    """What satsr needs of a product: band files, DN scaling and acquisition time."""

    path: Path
    level: str  # "L1C" or "L2A"
    band_files: dict[str, str] = field(repr=False)  # band name -> GDAL path of its JP2 (10 and 20 m bands)
    processing_baseline: str | None
    scaling: ReflectanceScaling
    start_time: str | None
    scl_file: str | None = None  # L2A scene classification (20 m), GDAL path

    def scl_vrt(self) -> str:
        """The scene classification resampled (nearest) onto the 10 m grid, as VRT XML."""
        if self.scl_file is None:
            raise SafeError(f"{self.path}: no scene classification (SCL): cloud masking needs an L2A product")
        with rasterio.open(next(iter(self.band_files.values()))) as ten, rasterio.open(self.scl_file) as scl:
            width, height, transform, crs = ten.width, ten.height, ten.transform, ten.crs
            scl_w, scl_h = scl.width, scl.height
        return (
            vrt_header(width, height, crs, transform)
            + '<VRTRasterBand dataType="Byte" band="1"><Description>SCL</Description><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{escape(self.scl_file)}</SourceFilename>'
            "<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{scl_w}" ySize="{scl_h}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
            "</SimpleSource></VRTRasterBand></VRTDataset>"
        )

    def vrt(self, bands: tuple[str, ...] | None = None) -> str:
        """A VRT (XML text, openable by rasterio) stacking ``bands`` (default: all 10 m bands) on the 10 m
        grid, the 20 m bands' pixels repeated 2 x 2 (``satsr.io.vrt.stack_vrt``)."""
        bands = bands or tuple(b for b in TEN_METRE_BANDS if b in self.band_files)
        for band in bands:
            if band not in self.band_files:
                native = S2_BANDS[band].gsd_m if band in S2_BANDS else None
                why = (
                    f"a {native:g} m band; satsr reads the 10 m and 20 m bands of products"
                    if native and native not in (10, 20)
                    else "missing"
                )
                raise SafeError(
                    f"{self.path}: band {band} is {why} (bands here: {', '.join(self.band_files)})"
                )
        try:
            return stack_vrt({band: self.band_files[band] for band in bands}, nodata=0)
        except VRTError as err:
            raise SafeError(f"{self.path}: {err}") from err


def is_safe(path: str | Path) -> bool:
    name = Path(path).name.upper()
    return name.endswith(".SAFE") or name.endswith(".SAFE.ZIP")


def output_name(path: str | Path) -> str:
    """The GeoTIFF name for an input in a folder run: ``X.tif`` for ``X.tif``, ``X.SAFE``, ``X.SAFE.zip``."""
    name = Path(path).name
    for suffix in (".SAFE.zip", ".SAFE"):
        if name.upper().endswith(suffix.upper()):
            return name[: -len(suffix)] + ".tif"
    return Path(name).with_suffix(".tif").name


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _texts(root: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == tag]


def _first_text(root: ET.Element, tag: str) -> str | None:
    """Stripped text of the first ``tag`` element (any namespace), None if absent or empty."""
    elements = _texts(root, tag)
    text = (elements[0].text or "").strip() if elements else ""
    return text or None


def _scaling(root: ET.Element, level: str, baseline: str | None) -> ReflectanceScaling:
    """Quantification and the add-offset of the 10 m bands (they must agree: one offset per raster)."""
    quant_tag = "QUANTIFICATION_VALUE" if level == "L1C" else "BOA_QUANTIFICATION_VALUE"
    quant = _texts(root, quant_tag)
    quantification = float(quant[0].text or S2_QUANTIFICATION_VALUE) if quant else S2_QUANTIFICATION_VALUE
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    offsets = {}
    for element in _texts(root, offset_tag):
        band_id = int(element.get("band_id", -1))
        if 0 <= band_id < len(METADATA_BAND_ORDER):
            offsets[METADATA_BAND_ORDER[band_id]] = float(element.text or 0)
    if offsets:
        wanted = {offsets[b] for b in READ_BANDS if b in offsets} or {0.0}
        if len(wanted) > 1:
            raise SafeError(
                f"{offset_tag} differs between the 10 m and 20 m bands ({sorted(wanted)}); not supported"
            )
        return ReflectanceScaling(quantification=quantification, offset=wanted.pop())
    offset = processing_baseline_offset(baseline) if baseline else 0.0
    return ReflectanceScaling(quantification=quantification, offset=offset)


def read_safe(path: str | Path) -> SafeProduct:
    """Inspect a ``.SAFE`` folder or ``.SAFE.zip``: metadata and the 10 m and 20 m band files (of an
    L2A product, each from the folder of its native resolution: ``R10m``, ``R20m``)."""
    path = Path(path)
    if not path.exists():
        raise SafeError(f"{path}: no such product")
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        prefix = f"{path.resolve()}/"

        def read_text(name: str) -> bytes:
            return (path / name).read_bytes()
    else:
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as err:
            raise SafeError(f"{path}: not a zip archive ({err})") from err
        names = archive.namelist()
        prefix = f"/vsizip/{path.resolve()}/"

        def read_text(name: str) -> bytes:
            return archive.read(name)

    metadata = sorted(n for n in names if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n))
    if not metadata:
        raise SafeError(f"{path}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml (not a Sentinel-2 L1C/L2A product)")
    level = "L1C" if metadata[0].endswith("MTD_MSIL1C.xml") else "L2A"
    try:
        root = ET.fromstring(read_text(metadata[0]))
    except ET.ParseError as err:
        raise SafeError(f"{path}: unreadable {metadata[0]} ({err})") from err
    baseline = _first_text(root, "PROCESSING_BASELINE")
    band_files: dict[str, str] = {}
    for name in sorted(names):
        match = _BAND_FILE.search(name)
        if "/IMG_DATA/" not in f"/{name}" or match is None:
            continue
        band = match.group(1).upper()
        if band not in READ_BANDS:
            continue
        if level == "L2A" and f"/R{S2_BANDS[band].gsd_m:g}m/" not in f"/{name}":
            continue
        if band in band_files:
            raise SafeError(
                f"{path}: several files for band {band} (multi-granule products are not supported)"
            )
        band_files[band] = prefix + name
    band_files = {b: band_files[b] for b in READ_BANDS if b in band_files}  # the 10 m grid's bands first
    scl = [n for n in sorted(names) if re.search(r"/R20m/[^/]*_SCL_20m\.jp2$", f"/{n}", re.IGNORECASE)]
    if not any(b in band_files for b in TEN_METRE_BANDS):
        raise SafeError(f"{path}: no 10 m band files (IMG_DATA/*_B0?.jp2) in the product")
    return SafeProduct(
        path=path, level=level, band_files=band_files, processing_baseline=baseline,
        scaling=_scaling(root, level, baseline), start_time=_first_text(root, "PRODUCT_START_TIME"),
        scl_file=prefix + scl[0] if scl else None,
    )  # fmt: skip
