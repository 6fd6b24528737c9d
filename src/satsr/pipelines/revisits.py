"""``satsr fuse``: several revisits of one place -> one super-resolved GeoTIFF (SatDiffMoE fusion).

Inputs on other grids are reprojected (bilinear) onto the first input's grid. Dates come from
``dates``, else from raster tags (ACQUISITION_DATE, ...) or a date in the file name; the target date
defaults to the latest input. Revisits whose clear share (not nodata, not cloud) is below
``min_clear`` are dropped with a message. The kept ones are a scene of N revisits for the one path of
``satsr.pipelines.scene``: masked values take the median of the revisits that see them (the scene's
band means where none does), so clouds never reach the model; each window's trajectories start from
scene-wide noise fields, so tiles blend without seams. The anchored method (the default) keeps the date
and radiometry of the input nearest the target date (its name is logged and tagged
``SATSR_FUSION_ANCHOR``; its acquisition time is the output's, the target date asked for is tagged
``SATSR_TARGET_DATE``); the others are aligned and weighted per window (``satsr.models.revisit_fusion``).
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

from satsr.data.revisit_weights import anchor_index
from satsr.defaults import (
    DEFAULT_FUSION_MODEL,
    DEFAULT_MIN_CLEAR,
    DEFAULT_OVERLAP,
    DEFAULT_SEED,
    DEFAULT_TILE_SIZE,
)
from satsr.io.dates import Acquired, acquisition_time
from satsr.io.grid import Grid, RasterError
from satsr.io.raster import RasterReader
from satsr.io.stream import TileFn
from satsr.io.tiling import Tile, fit_tiling
from satsr.models.registry import Upscaler, load
from satsr.models.revisit_fusion import FusionConfig
from satsr.pipelines.bands import open_for_model
from satsr.pipelines.files import GDAL_CACHE_BYTES
from satsr.pipelines.outputs import model_provenance, model_tags, stream_to_files, write_quicklook, write_stac
from satsr.pipelines.request import check_output_name, refuse_existing
from satsr.pipelines.resume import Interrupted
from satsr.pipelines.scene import RasterScene

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
    return _input_time(target, acquired[latest], f"fuse target date: the latest input, {paths[latest].name}")


def _input_time(day: datetime.date, acquired: Acquired | None, why: str) -> Acquired:
    """One input's acquisition time, described as ``why`` and where it came from: its tags or name
    (``acquired``), else ``--dates`` (``day``, at midnight UTC)."""
    if acquired is None:  # the date came from --dates
        midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
        return Acquired(midnight, f"{why} (--dates)", date_only=True)
    return Acquired(acquired.when, f"{why} ({acquired.source})", acquired.date_only)


def anchor_time(
    path: Path, when: datetime.date | None, acquired: Acquired | None, target_given: bool
) -> Acquired | None:
    """An anchored fusion's acquisition time: its anchor's (the input whose date and radiometry the output
    keeps), not the target date, which no input may have been acquired on (``SATSR_TARGET_DATE`` keeps
    that); None when the anchor's date is unknown."""
    if when is None:
        return None
    nearest = "--target-date" if target_given else "latest date"
    return _input_time(when, acquired, f"fusion anchor {path.name}, the input nearest the {nearest}")


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


def fusion_tile_fn(
    upscaler: Upscaler, channels: int, dts: list[float], seed: int, config: FusionConfig
) -> TileFn:
    """The model over a batch of stacked revisit windows ``(B, N * C, h, w)``: one fused image each."""

    def run(batch: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
        fused = []
        for item, tile in zip(batch, tiles, strict=True):
            revisits = item.reshape(len(dts), channels, *item.shape[-2:])
            # fusion draws its anchor's trajectory as sample 0 of ``upscale_file`` with this seed
            fused.append(upscaler.fuse(revisits, dts, seed, config, (tile.row, tile.col)))
        return np.stack(fused)

    return run


def fuse_files(
    inputs: Sequence[str | Path], output: str | Path, model: str | Path | Upscaler = DEFAULT_FUSION_MODEL,
    dates: Sequence[str] | None = None, target_date: str | None = None,
    bands: Sequence[str | int] | None = None, steps: int | None = None, seed: int = DEFAULT_SEED,
    tile_size: int = DEFAULT_TILE_SIZE, overlap: int = DEFAULT_OVERLAP, min_clear: float = DEFAULT_MIN_CLEAR,
    mask_clouds: bool = False, overwrite: bool = False, cog: bool = False, progress: bool = False,
    device: str = "cpu", quicklook: str | Path | None = None,
) -> Path:  # fmt: skip
    """Fuse revisits into one image on the first input's grid refined by the model's scale.

    An input smaller than ``tile_size`` runs as one window of its own size (``fit_tiling``);
    ``quicklook`` names a PNG with the first input and the result side by side. Ctrl-C leaves nothing
    (a fusion does not resume) and says so.
    """
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    if not upscaler.can_fuse:
        raise ValueError(f"model {upscaler.name} cannot fuse revisits (use a latent diffusion model)")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("no input rasters")
    if dates is not None and len(dates) != len(paths):
        raise ValueError(f"{len(paths)} inputs but {len(dates)} dates")
    run = _FusionRun(
        upscaler, upscaler.fusion_config.with_steps(steps), seed, (tile_size, overlap), overwrite, cog,
        progress,
    )  # fmt: skip
    output = check_output_name(output)
    refuse_existing([output], overwrite)
    time_aware = bool(getattr(upscaler.network, "time_conditioned", False))
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), ExitStack() as stack:
            readers = _open_revisits(stack, paths, bands, upscaler, mask_clouds)
            timing = _timing(paths, readers, dates, target_date, upscaler, time_aware)
            keep = _clear_revisits(paths, readers, timing.dt_days, min_clear)
            if run.config.method == "anchored" and timing.target is not None:
                k = paths.index(keep[anchor_index([dt for _, _, dt in keep])][0])
                fused_time = anchor_time(paths[k], timing.when[k], timing.acquired[k], bool(target_date))
            else:
                fused_time = target_time(
                    timing.target, bool(target_date), paths, timing.when, timing.acquired
                )
            stack_ = _Kept(paths, keep, fused_time, timing.target)
            run.stream(output, stack_)
            if quicklook is not None:
                write_quicklook(stack_.readers[0], output, upscaler, quicklook)
            run.describe(output, stack_, quicklook)
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {output} was not written{NOT_RESUMED}") from None
    return output


#: What Ctrl-C of a fusion adds to its message.
NOT_RESUMED = " (a fusion does not resume)"


@dataclass(frozen=True)
class _Kept:
    """The revisits a fusion keeps (path, reader, dt_days each), of all ``inputs``, and the target."""

    inputs: list[Path]
    keep: list[tuple[Path, RasterReader, float]]
    fused_time: Acquired | None  # the output's acquisition time (its STAC datetime)
    target: datetime.date | None

    @property
    def paths(self) -> list[Path]:
        return [p for p, _, _ in self.keep]

    @property
    def readers(self) -> list[RasterReader]:
        return [r for _, r, _ in self.keep]

    @property
    def dt_days(self) -> list[float]:
        return [dt for _, _, dt in self.keep]

    @property
    def target_date(self) -> str:
        return self.target.isoformat() if self.target else "unknown"


@dataclass(frozen=True)
class _FusionRun:
    """The options of one ``fuse_files`` call, and its two steps: stream, then describe the output."""

    upscaler: Upscaler
    config: FusionConfig
    seed: int
    tiling: tuple[int, int]  # tile size, overlap
    overwrite: bool
    cog: bool
    progress: bool

    def anchor(self, kept: _Kept) -> str | None:
        """The input whose date and radiometry an anchored fusion keeps (the one nearest the target date)."""
        return kept.paths[anchor_index(kept.dt_days)].name if self.config.method == "anchored" else None

    def tags(self, kept: _Kept) -> dict[str, str]:
        anchor = self.anchor(kept)
        return {
            **model_tags(self.upscaler, self.seed, self.upscaler.fusion_steps(self.config)),
            "SATSR_FUSION_METHOD": self.config.method,
            **({"SATSR_FUSION_ANCHOR": anchor} if anchor else {}),
            "SATSR_INPUTS": ",".join(p.name for p in kept.inputs),
            "SATSR_DT_DAYS": ",".join(f"{dt:g}" for dt in kept.dt_days),
            "SATSR_TARGET_DATE": kept.target_date,
            **(kept.fused_time.tags() if kept.fused_time is not None else {}),
        }  # fmt: skip

    def stream(self, output: Path, kept: _Kept) -> None:
        anchor = self.anchor(kept)
        if anchor:
            log.info(
                "anchor: %s, the date nearest the target; the output keeps its radiometry, and where the "
                "other dates disagree with it, it is that date's super-resolution alone",
                anchor,
            )
        meta, channels = kept.readers[0].meta, len(self.upscaler.bands)
        tiling = fit_tiling(*self.tiling, meta.height, meta.width)
        tile_fn = fusion_tile_fn(self.upscaler, channels, kept.dt_days, self.seed, self.config)
        stream_to_files(
            RasterScene(kept.readers), meta, [output], self.tags(kept), self.upscaler.scale, tile_fn, tiling,
            1, self.overwrite, self.cog, not_resumed=NOT_RESUMED, batch_size=1, progress=self.progress,
        )  # fmt: skip

    def describe(self, output: Path, kept: _Kept, quicklook: str | Path | None) -> None:
        """The STAC Item beside the output."""
        s = self.upscaler.scale
        provenance = {
            **model_provenance(self.upscaler, s, self.seed), "steps": self.upscaler.fusion_steps(self.config),
            "revisits": len(kept.keep), "dt_days": kept.dt_days, "target_date": kept.target_date,
            "fusion_method": self.config.method, "fusion_anchor": self.anchor(kept),
            "dropped_inputs": [str(p.resolve()) for p in kept.inputs if p not in kept.paths] or None,
        }  # fmt: skip
        title = f"{self.upscaler.name} fusion of {len(kept.keep)} revisits x{s}"
        write_stac(output, kept.readers[0].meta.refined(s), kept.paths, kept.fused_time, provenance,
                   {"data": (output, title, ["data"])}, quicklook, "first input | fused output")  # fmt: skip
