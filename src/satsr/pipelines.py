"""Where the pieces meet: raster in, tiled model, raster out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from satsr import __version__
from satsr.evaluation.report import render_crops
from satsr.io.bands import ReflectanceScaling, processing_baseline_offset
from satsr.io.raster import RasterError, read_raster, write_raster
from satsr.io.tiling import upscale_tiled
from satsr.models.registry import Upscaler, load

#: LR tile side and overlap, pixels; one definition for the CLI and the API.
DEFAULT_TILE_SIZE = 128
DEFAULT_OVERLAP = 16


def fill_invalid(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Give masked pixels each band's mean of valid pixels, only so the network sees no outliers.

    These pixels are masked again in the output; the fill never reaches the user as data.
    """
    out = reflectance.copy()
    for band in out:
        band[~valid] = band[valid].mean()
    return out


def upscale_file(
    input: str | Path,
    output: str | Path,
    model: str | Path | Upscaler = "s2-rgbn-x4-fast",
    scale: float | None = None,
    bands: Sequence[str | int] | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
    quicklook: str | Path | None = None,
    processing_baseline: str | None = None,
) -> Path:
    """Super-resolve one raster into a GeoTIFF on the same bounds with pixel size / scale.

    ``processing_baseline`` (e.g. "04.00") sets the BOA/RADIO_ADD_OFFSET of -1000 DN for
    baselines >= 04.00; by default integer inputs are read as DN / 10000 with no offset.
    ``quicklook`` names a PNG that shows the input and the result side by side (RGB, 2-98 %).
    """
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    if scale is not None and scale != upscaler.scale:
        raise RasterError(f"model {upscaler.name} supports scale {upscaler.scale} only, got {scale}")
    output = Path(output)
    if output.exists() and not overwrite:
        raise RasterError(f"{output}: output exists (pass --overwrite to replace it)")
    scaling = None
    if processing_baseline is not None:
        scaling = ReflectanceScaling(offset=processing_baseline_offset(processing_baseline))
    reflectance, valid, meta = read_raster(input, bands, scaling)
    if reflectance.shape[0] != len(upscaler.bands):
        raise RasterError(
            f"{input}: model {upscaler.name} needs {len(upscaler.bands)} bands "
            f"({', '.join(upscaler.bands)}), the input has {reflectance.shape[0]}; select them with --bands"
        )
    s = upscaler.scale
    sr = upscale_tiled(fill_invalid(reflectance, valid), upscaler, s, tile_size, overlap, progress=progress)  # type: ignore[arg-type]
    sr_valid = np.repeat(np.repeat(valid, s, axis=0), s, axis=1)
    tags = {"SATSR_MODEL": upscaler.name, "SATSR_VERSION": __version__, "SATSR_INPUT": Path(input).name}
    written = write_raster(output, sr, sr_valid, meta, s, tags, overwrite=overwrite)
    if quicklook is not None:
        strip = render_crops({"LR (input)": reflectance, f"SR {upscaler.name}": sr})
        strip.save(quicklook)
    return written
