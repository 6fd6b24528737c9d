"""What every entry point checks before any work: the model and scale asked, the sampling options, the
output names."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from satsr.io.grid import RasterError
from satsr.io.stac import stac_path
from satsr.models.continuous import MAX_SCALE, TRAINED_MAX_SCALE
from satsr.models.registry import Upscaler, load

log = logging.getLogger("satsr.pipelines")


def output_scale(upscaler: Upscaler, scale: float | None) -> float:
    """The scale a request runs at: the model's own, or for a continuous-scale model any real one in
    ``[1, MAX_SCALE]`` (with a warning beyond the ``TRAINED_MAX_SCALE`` it was trained for)."""
    if not upscaler.continuous:
        served = sorted({upscaler.scale, *upscaler.scales})
        if scale is not None and scale not in served:
            listed = " or ".join(map(str, served))
            raise RasterError(f"model {upscaler.name} supports scale {listed} only, got {scale:g}")
        return upscaler.scale if scale is None else int(scale)
    s = float(upscaler.scale if scale is None else scale)
    if not (math.isfinite(s) and 1.0 <= s <= MAX_SCALE):
        raise ValueError(f"--scale must be a number in [1, {MAX_SCALE:g}] for {upscaler.name}, got {scale}")
    if s > TRAINED_MAX_SCALE:
        log.warning(
            "%s was trained up to x%g; x%g extrapolates beyond that", upscaler.name, TRAINED_MAX_SCALE, s
        )
    return s


def check_sampling(upscaler: Upscaler, samples: int, steps: int | None) -> None:
    """Refuse sampling options the model cannot serve (a deterministic model draws no samples)."""
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if samples > 1 and not upscaler.stochastic:
        raise ValueError(
            f"model {upscaler.name} is deterministic: --samples > 1 (uncertainty) needs a diffusion model"
        )
    if steps is not None and not upscaler.stochastic:
        raise ValueError(f"model {upscaler.name} is deterministic: --steps applies to diffusion models")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")


def check_output_name(output: str | Path) -> Path:
    """The output as a path, refused when it names a folder (a file name is needed)."""
    output = Path(output)
    if output.is_dir():
        raise RasterError(
            f"{output} is a folder: give the output's file name (only a folder input takes a folder)"
        )
    return output


def refuse_existing(outputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, outputs (and their STAC Item beside the first) that exist already."""
    for path in [*outputs, stac_path(outputs[0])]:
        if path.exists() and not overwrite:
            raise RasterError(f"{path}: output exists (pass --overwrite to replace it)")


def requested_model(
    model: str | Path | Upscaler, device: str, scale: float | None, bands: Sequence[str | int] | None
) -> tuple[Upscaler, float, Sequence[str | int] | None]:
    """The model as a request runs it, the scale, and the bands to read: a model that serves several
    fixed scales set to the one asked; for a model that needs every band it reads (``s2-10band``),
    ``bands`` picks its outputs instead, and every band is read."""
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    s = output_scale(upscaler, scale)
    upscaler = upscaler.at_scale(s) if upscaler.scales else upscaler
    if bands is not None and upscaler.needs_all_bands:
        return upscaler.select_outputs([str(b) for b in bands]), s, None
    return upscaler, s, bands
