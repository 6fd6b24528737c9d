"""Sentinel-2 MSI band metadata and digital-number (DN) to reflectance conversion.

Band centre wavelengths and native ground sampling distances follow the Sentinel-2 MSI
User Guide (ESA). The MTF values at Nyquist are approximate in-flight figures, inside ESA's
0.15-0.30 requirement for the MSI; they only set the width of the Gaussian blur used by
Wald's-protocol degradation (``satsr.data.degradation``), and in-flight values differ by
satellite unit and date by a few hundredths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Quantification value of Sentinel-2 L1C/L2A products: reflectance = (DN + offset) / 10000.
S2_QUANTIFICATION_VALUE = 10000.0
#: BOA_ADD_OFFSET / RADIO_ADD_OFFSET introduced with processing baseline 04.00 (January 2022).
S2_BASELINE_04_OFFSET = -1000.0
#: 8-bit pictures (aerial RGB, S2 true-colour images) are read as values in [0, 1]: DN / 255.
PICTURE_WHITE = 255.0


@dataclass(frozen=True)
class S2Band:
    """One Sentinel-2 MSI band."""

    name: str  # e.g. "B04"
    common_name: str  # STAC eo common name
    center_nm: float  # centre wavelength, nanometres
    gsd_m: float  # native ground sampling distance, metres
    mtf_nyquist: float  # modulation transfer function at the Nyquist frequency of gsd_m


S2_BANDS: dict[str, S2Band] = {
    band.name: band
    for band in (
        S2Band("B01", "coastal", 442.7, 60.0, 0.33),
        S2Band("B02", "blue", 492.4, 10.0, 0.29),
        S2Band("B03", "green", 559.8, 10.0, 0.29),
        S2Band("B04", "red", 664.6, 10.0, 0.28),
        S2Band("B05", "rededge", 704.1, 20.0, 0.26),
        S2Band("B06", "rededge", 740.5, 20.0, 0.26),
        S2Band("B07", "rededge", 782.8, 20.0, 0.26),
        S2Band("B08", "nir", 832.8, 10.0, 0.24),
        S2Band("B8A", "nir08", 864.7, 20.0, 0.24),
        S2Band("B09", "nir09", 945.1, 60.0, 0.23),
        S2Band("B10", "cirrus", 1373.5, 60.0, 0.21),
        S2Band("B11", "swir16", 1613.7, 20.0, 0.21),
        S2Band("B12", "swir22", 2202.4, 20.0, 0.21),
    )
}

#: The 10 m bands in the order satsr's RGB+NIR models use (blue, green, red, NIR), as stored in L1C/L2A.
S2_RGBN = tuple(name for name, band in S2_BANDS.items() if band.gsd_m == 10.0)
#: The 20 m bands (red edge, narrow NIR, SWIR), in the order of their band numbers.
S2_20M = tuple(name for name, band in S2_BANDS.items() if band.gsd_m == 20.0)
#: The names that stand for one band each in the public STAC APIs' asset keys (Element 84's Earth Search)
#: and in user spellings; the common name "rededge" of three bands is not one of them.
STAC_ASSET_KEYS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
    "swir22": "B12",
}  # fmt: skip
#: Sentinel-2 bands that make a true-colour (R, G, B) image.
S2_TRUE_COLOUR = ("B04", "B03", "B02")
#: Reflectance shown as white in RGB pictures of Sentinel-2 bands (LPIPS, FID, fusion's perceptual
#: distance, the LPIPS training terms); 8-bit pictures, read as DN / 255, use 1.
S2_DISPLAY_WHITE = 0.3
#: Channel letters of plain RGB pictures, as the Sentinel-2 bands of the same colour.
_PICTURE_CHANNELS = {"R": "B04", "G": "B03", "B": "B02"}


def canonical_band_name(name: str) -> str:
    """Normalise user spellings ("b4", "B4", "B04", "red", "nir", "swir16") to a Sentinel-2 band name."""
    key = name.strip().upper()
    if key in S2_BANDS:
        return key
    if key.startswith("B") and key[1:].isdigit():
        padded = f"B{int(key[1:]):02d}"
        if padded in S2_BANDS:
            return padded
    if key.lower() in STAC_ASSET_KEYS:
        return STAC_ASSET_KEYS[key.lower()]
    raise ValueError(f"unknown Sentinel-2 band {name!r}; expected one of {', '.join(S2_BANDS)}")


def processing_baseline_offset(baseline: str | None) -> float:
    """The additive DN offset for a processing baseline string such as "04.00" or "N0400"."""
    if baseline is None:
        return 0.0
    digits = baseline.strip().upper().removeprefix("N").replace(".", "")
    if not digits.isdigit():
        raise ValueError(f"cannot parse processing baseline {baseline!r}; expected e.g. '04.00' or 'N0400'")
    return S2_BASELINE_04_OFFSET if int(digits[:2]) >= 4 else 0.0


@dataclass(frozen=True)
class ReflectanceScaling:
    """Linear DN <-> reflectance mapping: reflectance = (DN + offset) / quantification."""

    quantification: float = S2_QUANTIFICATION_VALUE
    offset: float = 0.0

    def to_reflectance(self, dn: np.ndarray) -> np.ndarray:
        return (dn.astype(np.float32) + np.float32(self.offset)) / np.float32(self.quantification)

    def to_dn(self, reflectance: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Back to the input's DN convention, rounded and clipped to the range of ``dtype``."""
        dn = reflectance * np.float32(self.quantification) - np.float32(self.offset)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            dn = np.clip(np.rint(dn), info.min, info.max)
        return dn.astype(dtype)

    @classmethod
    def identity(cls) -> ReflectanceScaling:
        return cls(quantification=1.0, offset=0.0)


def dn_scaling(
    dtype: np.dtype | str, scale: float | None = None, offset: float | None = None
) -> ReflectanceScaling:
    """satsr's one DN convention, for files and arrays alike.

    A declared linear scaling, reflectance = DN * ``scale`` + ``offset`` (GDAL band scale/offset, the
    CF ``scale_factor``/``add_offset`` of an xarray array), when it is not the identity; else DN / 255
    for 8-bit pictures, Sentinel-2's DN / 10000 for other integers, and floats as reflectance already.
    """
    dtype = np.dtype(dtype)
    declared = (1.0 if scale is None else float(scale), 0.0 if offset is None else float(offset))
    if declared != (1.0, 0.0) and declared[0] > 0:
        return ReflectanceScaling(quantification=1 / declared[0], offset=declared[1] / declared[0])
    if dtype == np.uint8:
        return ReflectanceScaling(quantification=PICTURE_WHITE)
    return ReflectanceScaling() if np.issubdtype(dtype, np.integer) else ReflectanceScaling.identity()


def is_sentinel2(bands: Sequence[str]) -> bool:
    """Whether every name is a Sentinel-2 band as ``S2_BANDS`` spells it ("B02", not "blue" or "B"):
    what the sensor model (Wald's degradation) and the display white are chosen by, never guessed."""
    return len(bands) > 0 and all(band in S2_BANDS for band in bands)


def display_white(bands: Sequence[str]) -> float:
    """The reflectance shown as white in RGB pictures of these bands (``S2_DISPLAY_WHITE`` or 1)."""
    return S2_DISPLAY_WHITE if is_sentinel2(bands) else 1.0


def rgb_channels(bands: Sequence[str]) -> tuple[int, int, int] | None:
    """Indices of (red, green, blue) among band names (Sentinel-2 names, common names such as "red",
    or R, G, B), whatever their order; None when they are not all there."""
    canonical = []
    for band in bands:
        try:
            canonical.append(canonical_band_name(band))
        except ValueError:
            canonical.append(_PICTURE_CHANNELS.get(band.strip().upper(), band))
    if not all(name in canonical for name in S2_TRUE_COLOUR):
        return None
    red, green, blue = (canonical.index(name) for name in S2_TRUE_COLOUR)
    return red, green, blue
