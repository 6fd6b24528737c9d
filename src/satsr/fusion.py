"""``satsr fuse``: several revisits of one place -> one super-resolved GeoTIFF (SatDiffMoE fusion).

Inputs on other grids are reprojected (bilinear) onto the first input's grid. Dates come from
``dates``, else from raster tags (ACQUISITION_DATE, ...) or a date in the file name; the target date
defaults to the latest input. Revisits whose clear share (not nodata, not cloud) is below
``min_clear`` are dropped with a message; inside the others, masked pixels take the median of the
revisits that see them, so clouds never reach the model. The scene is streamed window by window
like ``satsr upscale``; each window's trajectories start from scene-wide noise fields, so tiles
blend without seams.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from satsr.defaults import (
    DEFAULT_FUSION_MODEL,
    DEFAULT_FUSION_STEPS,
    DEFAULT_MIN_CLEAR,
    DEFAULT_OVERLAP,
    DEFAULT_SEED,
    DEFAULT_TILE_SIZE,
    VERSION,
)
from satsr.diffusion.noise import mix_seed
from satsr.io.dates import Acquired, acquisition_time
from satsr.io.grid import Grid, RasterError, RasterMeta
from satsr.io.masks import fill_masked
from satsr.io.raster import RasterReader
from satsr.io.stac import build_item, stac_path, write_item
from satsr.io.stream import TileFn, upscale_stream
from satsr.io.tiling import Tile, fit_tiling
from satsr.io.writer import RasterWriter
from satsr.models.registry import Upscaler, load
from satsr.models.revisit_fusion import FusionConfig
from satsr.pipelines import GDAL_CACHE_MB, check_output_name, open_for_model, write_quicklook
from satsr.resume import Interrupted

log = logging.getLogger(__name__)

#: Longest side of the decimated read that measures a revisit's clear share.
CLEAR_SHARE_SIDE = 512


def parse_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip()[:10])
    except ValueError as err:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from err


def revisit_date(path: Path, tags: dict[str, str]) -> datetime.date | None:
    """The acquisition date from the raster's tags, else from a date in its name (``satsr.io.dates``)."""
    acquired = acquisition_time(tags, path.name)
    return acquired.when.date() if acquired is not None else None


def target_time(
    target: datetime.date | None,
    given: bool,
    paths: Sequence[Path],
    when: Sequence[datetime.date | None],
    acquired: Sequence[Acquired | None],
) -> Acquired | None:
    """The fused image's acquisition time (its STAC ``datetime``) and where it came from: ``--target-date``
    (a day), else the latest input's time (as that input's tags, name or ``--dates`` give it)."""
    if target is None:
        return None
    midnight = datetime.datetime.combine(target, datetime.time(), tzinfo=datetime.UTC)
    if given:
        return Acquired(midnight, "fuse target date (--target-date)", date_only=True)
    latest = max(k for k, day in enumerate(when) if day == target)
    source = acquired[latest]
    if source is None:  # the date came from --dates
        return Acquired(midnight, f"fuse target date: the latest input, {paths[latest].name} (--dates)", True)
    return Acquired(
        source.when,
        f"fuse target date: the latest input, {paths[latest].name} ({source.source})",
        source.date_only,
    )


def _clear_share(reader: RasterReader) -> float:
    """Share of clear (valid, cloud-free) pixels, from a decimated read."""
    _, valid = reader.read_decimated(CLEAR_SHARE_SIDE)
    return float(valid.mean())


def _open_revisits(
    stack: ExitStack,
    paths: list[Path],
    bands: Sequence[str | int] | None,
    upscaler: Upscaler,
    mask_clouds: bool,
) -> list[RasterReader]:
    """Readers of every revisit, the model's bands picked by name (``open_for_model``), all on the first
    input's grid."""
    first = stack.enter_context(open_for_model(paths[0], bands, upscaler, mask_clouds=mask_clouds))
    grid = Grid(first.meta.crs, first.meta.transform, first.meta.width, first.meta.height)
    return [first] + [
        stack.enter_context(open_for_model(p, bands, upscaler, mask_clouds=mask_clouds, grid=grid))
        for p in paths[1:]
    ]


@dataclass(frozen=True)
class _Timing:
    """Dates of the revisits, the target date and each revisit's time difference to it, in days."""

    when: list[datetime.date | None]
    acquired: list[Acquired | None]  # from tags or names (None where --dates gave the date)
    target: datetime.date | None
    dt_days: list[float]


def _timing(
    paths: list[Path], readers: list[RasterReader], dates: Sequence[str] | None, target_date: str | None,
    upscaler: Upscaler, time_aware: bool,
) -> _Timing:  # fmt: skip
    acquired = [
        None if dates else acquisition_time(r.tags(), p.name) for p, r in zip(paths, readers, strict=True)
    ]
    when: list[datetime.date | None] = (
        [parse_date(d) for d in dates]
        if dates is not None
        else [a.when.date() if a else None for a in acquired]
    )
    undated = [p.name for p, d in zip(paths, when, strict=True) if d is None]
    if undated and time_aware:
        raise ValueError(
            f"no acquisition date for {', '.join(undated)}: give --dates (tags and names have none)"
        )
    if undated:
        log.info(
            "no date for %s: time difference 0 (model %s does not use it)", ", ".join(undated), upscaler.name
        )
    known = [d for d in when if d is not None]
    target = parse_date(target_date) if target_date else (max(known) if known else None)
    dts = [float((target - d).days) if (target and d) else 0.0 for d in when]
    return _Timing(when, acquired, target, dts)


def _clear_revisits(
    paths: list[Path], readers: list[RasterReader], dts: list[float], min_clear: float
) -> list[tuple[Path, RasterReader, float]]:
    """The revisits with at least ``min_clear`` clear pixels; the others are dropped with a message."""
    keep = []
    for path, reader, dt in zip(paths, readers, dts, strict=True):
        share = _clear_share(reader)
        if share < min_clear:
            log.warning("%s: dropped, only %.0f%% of it is clear (--min-clear %.0f%%)", path, 100 * share,
                        100 * min_clear)  # fmt: skip
        else:
            keep.append((path, reader, dt))
    if not keep:
        raise RasterError(f"no revisit has at least {100 * min_clear:.0f}% clear pixels; nothing to fuse")
    log.info("fusing %d revisit(s), dt = %s days", len(keep), ", ".join(f"{dt:+.0f}" for *_, dt in keep))
    return keep


def _fusion_fn(upscaler: Upscaler, channels: int, dts: list[float], seed: int, steps: int) -> TileFn:
    """The model over a batch of stacked revisit windows ``(B, N * C, h, w)``: one fused image each."""
    config = FusionConfig(steps=steps)

    def run(batch: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
        return np.stack([
            upscaler.fuse(item.reshape(len(dts), channels, *item.shape[-2:]), dts, mix_seed(seed, 0), config,
                          (tile.row, tile.col))
            for item, tile in zip(batch, tiles, strict=True)
        ])  # fmt: skip

    return run


def fuse_files(
    inputs: Sequence[str | Path],
    output: str | Path,
    model: str | Path | Upscaler = DEFAULT_FUSION_MODEL,
    dates: Sequence[str] | None = None,
    target_date: str | None = None,
    bands: Sequence[str | int] | None = None,
    steps: int = DEFAULT_FUSION_STEPS,
    seed: int = DEFAULT_SEED,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    min_clear: float = DEFAULT_MIN_CLEAR,
    mask_clouds: bool = False,
    overwrite: bool = False,
    cog: bool = False,
    progress: bool = False,
    device: str = "cpu",
    quicklook: str | Path | None = None,
) -> Path:
    """Fuse revisits into one image on the first input's grid refined by the model's scale.

    An input smaller than ``tile_size`` runs as one window of its own size (``fit_tiling``);
    ``quicklook`` names a PNG with the first input and the result side by side. Ctrl-C leaves nothing
    (a fusion does not resume) and says so.
    """
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    network = upscaler.network
    if not upscaler.can_fuse:
        raise ValueError(f"model {upscaler.name} cannot fuse revisits (use a latent diffusion model)")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("no input rasters")
    if dates is not None and len(dates) != len(paths):
        raise ValueError(f"{len(paths)} inputs but {len(dates)} dates")
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    output = check_output_name(output)
    for path in (output, stac_path(output)):
        if path.exists() and not overwrite:
            raise RasterError(f"{path}: output exists (pass --overwrite to replace it)")
    denoiser = getattr(getattr(network, "precond", None), "net", None)
    time_aware = getattr(denoiser, "dt_embed", None) is not None
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), ExitStack() as stack:
            readers = _open_revisits(stack, paths, bands, upscaler, mask_clouds)
            timing = _timing(paths, readers, dates, target_date, upscaler, time_aware)
            keep = _clear_revisits(paths, readers, timing.dt_days, min_clear)
            fused_time = target_time(timing.target, bool(target_date), paths, timing.when, timing.acquired)
            _fuse_and_write(
                output, readers[0].meta, keep, upscaler, fused_time, timing.target, paths, steps, seed,
                tile_size, overlap, overwrite, cog, progress, quicklook,
            )  # fmt: skip
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {output} was not written (a fusion does not resume)") from None
    return output


def _fuse_and_write(
    output: Path, meta: RasterMeta, keep: list[tuple[Path, RasterReader, float]], upscaler: Upscaler,
    fused_time: Acquired | None, target: datetime.date | None, paths: list[Path], steps: int, seed: int,
    tile_size: int, overlap: int, overwrite: bool, cog: bool, progress: bool, quicklook: str | Path | None,
) -> None:  # fmt: skip
    """Stream the fusion of the kept revisits into ``output``, then its STAC Item and quick-look."""
    kept_paths, kept_readers, kept_dts = (
        [p for p, *_ in keep],
        [r for _, r, _ in keep],
        [dt for *_, dt in keep],
    )
    channels, s = len(upscaler.bands), upscaler.scale

    def read(tile: Tile) -> np.ndarray:
        window = Window(tile.col, tile.row, tile.width, tile.height)
        stack_ = [r.read(window) for r in kept_readers]
        values = np.stack([v for v, _ in stack_]).astype(np.float32)  # (N, C, h, w)
        valid = np.stack([m for _, m in stack_])  # (N, h, w)
        return fill_masked(values, valid).reshape(-1, tile.height, tile.width)

    tags = {
        "SATSR_MODEL": upscaler.name, "SATSR_VERSION": VERSION, "SATSR_SEED": str(seed),
        "SATSR_STEPS": str(steps), "SATSR_INPUTS": ",".join(p.name for p in paths),
        "SATSR_DT_DAYS": ",".join(f"{dt:g}" for dt in kept_dts),
        "SATSR_TARGET_DATE": target.isoformat() if target else "unknown",
        **(fused_time.tags() if fused_time is not None else {}),
    }  # fmt: skip
    tile_size, overlap = fit_tiling(tile_size, overlap, meta.height, meta.width)
    with RasterWriter(output, meta, s, meta.height * s, meta.width * s, tags, overwrite, cog) as writer:

        def write(row: int, col: int, block: np.ndarray) -> None:
            _, h, w = block.shape
            window = Window(col // s, row // s, -(-w // s), -(-h // s))
            valid = np.any([r.read_valid(window) for r in kept_readers], axis=0)
            valid = np.repeat(np.repeat(valid, s, axis=0), s, axis=1)[:h, :w]
            writer.write(row, col, block, valid)

        upscale_stream(
            read, write, meta.height, meta.width,
            _fusion_fn(upscaler, channels, kept_dts, seed, steps), s, tile_size, overlap,
            out_channels=channels, batch_size=1, progress=progress,
        )  # fmt: skip
    assets = {"data": (output, f"{upscaler.name} fusion of {len(kept_readers)} revisits x{s}", ["data"])}
    if quicklook is not None:
        write_quicklook(kept_readers[0], output, upscaler, quicklook)
        assets["overview"] = (Path(quicklook), "first input | fused output", ["overview"])
    provenance = {
        "version": VERSION, "model": upscaler.name, "weights_sha256": upscaler.weights_sha256,
        "scale": s, "seed": seed, "steps": steps, "revisits": len(kept_readers),
        "dt_days": kept_dts, "target_date": tags["SATSR_TARGET_DATE"],
        "dropped_inputs": [str(p.resolve()) for p in paths if p not in kept_paths] or None,
    }  # fmt: skip
    item = build_item(output, meta.refined(s), kept_paths, fused_time, provenance, assets)
    write_item(stac_path(output), item)
