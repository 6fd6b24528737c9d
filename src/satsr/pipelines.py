"""Where the pieces meet: raster in, tiled model, raster out — window by window."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from satsr.defaults import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE, VERSION
from satsr.evaluation.report import render_crops
from satsr.io.bands import ReflectanceScaling, canonical_band_name, processing_baseline_offset, rgb_channels
from satsr.io.dates import Acquired, acquisition_time
from satsr.io.grid import Grid, RasterError, RasterMeta
from satsr.io.raster import RasterReader
from satsr.io.stac import build_item, stac_path, write_item
from satsr.io.stream import TileFn, upscale_stream
from satsr.io.tiling import SceneGrid, Tile, fit_tiling, lr_pixels
from satsr.io.writer import RasterWriter
from satsr.models.continuous import MAX_SCALE, TRAINED_MAX_SCALE
from satsr.models.registry import Upscaler, load
from satsr.models.sampling import sampling_tile_fn
from satsr.resume import Interrupted, JobState

log = logging.getLogger(__name__)

#: GDAL's block cache while streaming, MB. It holds the output blocks still being filled (one
#: row of 256-px blocks across the scene) so each compressed block is written once.
GDAL_CACHE_MB = 512
#: Largest side of the quick-look PNG panels, pixels.
QUICKLOOK_SIDE = 1024


def uncertainty_path(output: str | Path) -> Path:
    """``OUTPUT-stem.uncertainty.tif`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.uncertainty.tif")


def output_scale(upscaler: Upscaler, scale: float | None) -> float:
    """The scale a request runs at: the model's own, or for a continuous-scale model any real one in
    ``[1, MAX_SCALE]`` (with a warning beyond the ``TRAINED_MAX_SCALE`` it was trained for)."""
    if not upscaler.continuous:
        if scale is not None and scale != upscaler.scale:
            raise RasterError(f"model {upscaler.name} supports scale {upscaler.scale} only, got {scale}")
        return upscaler.scale
    s = float(upscaler.scale if scale is None else scale)
    if not (math.isfinite(s) and 1.0 <= s <= MAX_SCALE):
        raise ValueError(f"--scale must be a number in [1, {MAX_SCALE:g}] for {upscaler.name}, got {scale}")
    if s > TRAINED_MAX_SCALE:
        log.warning(
            "%s was trained up to x%g; x%g extrapolates beyond that", upscaler.name, TRAINED_MAX_SCALE, s
        )
    return s


def check_output_name(output: str | Path) -> Path:
    """The output as a path, refused when it names a folder (a file name is needed)."""
    output = Path(output)
    if output.is_dir():
        raise RasterError(
            f"{output} is a folder: give the output's file name (only a folder input takes a folder)"
        )
    return output


def _check_request(upscaler: Upscaler, scale: float | None, samples: int, steps: int | None) -> float:
    """Refuse a request the model cannot serve; return the scale it runs at (``output_scale``)."""
    s = output_scale(upscaler, scale)
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
    return s


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
    samples: int = 1,
    steps: int | None = None,
    seed: int = DEFAULT_SEED,
    cog: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resumable: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
    mask_clouds: bool = False,
) -> Path:
    """Super-resolve one raster into a GeoTIFF on the same bounds with pixel size / scale.

    The scene is read, upscaled, blended and written window by window (memory does not grow with
    the scene). ``processing_baseline`` (e.g. "04.00") sets the BOA/RADIO_ADD_OFFSET of -1000 DN
    for baselines >= 04.00; by default integer inputs are read as DN / 10000 with no offset.
    ``samples > 1`` (diffusion models) writes the mean and ``OUTPUT-stem.uncertainty.tif``, the
    per-pixel, per-band standard deviation in reflectance. ``seed`` fixes every sample; ``cog``
    writes Cloud-Optimized GeoTIFFs; ``quicklook`` names a PNG with input and result side by side.

    ``resumable``: progress is recorded after every row of windows (``.OUTPUT.state.npz`` beside the
    hidden temporary file ``.OUTPUT.part``); if the process is killed or interrupted (Ctrl-C), running
    the same call again continues from there and gives the same pixels as an uninterrupted run.
    Other errors remove both. Only finished outputs ever appear under their own names.

    ``scheduler`` (a Dask scheduler address) or ``workers`` (a local Dask cluster of that many
    processes) runs the model calls on a cluster (``satsr.distributed``); the pixels are the same.
    ``mask_clouds`` (Sentinel-2 L2A products) masks no-data, defective, cloud, cloud-shadow and cirrus
    pixels of the scene classification: they are written as nodata.
    """
    upscaler = model if isinstance(model, Upscaler) else load(model, device=device)
    s = _check_request(upscaler, scale, samples, steps)
    output = check_output_name(output)
    outputs = [output] + ([uncertainty_path(output)] if samples > 1 else [])
    for path in [*outputs, stac_path(output)]:
        if path.exists() and not overwrite:
            raise RasterError(f"{path}: output exists (pass --overwrite to replace it)")
    scaling = None
    if processing_baseline is not None:
        scaling = ReflectanceScaling(offset=processing_baseline_offset(processing_baseline))
    tags = {
        "SATSR_MODEL": upscaler.name, "SATSR_VERSION": VERSION, "SATSR_INPUT": Path(input).name,
        "SATSR_SEED": str(seed), "SATSR_SAMPLES": str(samples),
        "SATSR_STEPS": str(steps or upscaler.default_steps or "n/a"),
        "SATSR_SCALE": f"{s:g}",
    }  # fmt: skip
    if mask_clouds:
        tags["SATSR_MASK_CLOUDS"] = "scene classification classes 0, 1, 3, 8, 9, 10"
    consistency = getattr(upscaler.network, "lr_consistency", None)
    if consistency is not None:
        tags["SATSR_LR_CONSISTENCY"] = "on" if consistency else "off"
    detail = getattr(upscaler.network, "detail", None)
    if detail is not None:  # how far samples depart from the posterior mean (satsr.models.ldm)
        tags["SATSR_DETAIL"] = f"{detail:g}"
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB),
        open_for_model(input, bands, upscaler, scaling, mask_clouds) as reader,
    ):
        meta = reader.meta
        acquired = acquisition_time(reader.tags(), Path(input).name)
        tags.update(acquired.tags() if acquired is not None else {})
        fill = reader.band_means()  # also refuses an all-nodata raster before anything is written
        out_h, out_w = round(meta.height * s), round(meta.width * s)
        tile_size, overlap = fit_tiling(
            tile_size, overlap, meta.height, meta.width
        )  # small inputs: one window
        grid = SceneGrid((meta.height, meta.width), s) if upscaler.continuous else None
        job = None
        if resumable:
            job_options = {  # with the tags (model, seed, samples, steps, masking, consistency)
                "input": str(Path(input).resolve()), "size": [meta.height, meta.width],
                "bands": meta.band_names, "weights": upscaler.weights_sha256,
                "tile": [tile_size, overlap, batch_size], "cog": cog, "tags": tags,
            }  # fmt: skip
            fingerprint = json.dumps(job_options, sort_keys=True)
            job = JobState(output, outputs, fingerprint)
        try:
            with ExitStack() as stack:
                resume = job is not None and job.resuming
                writers = [
                    stack.enter_context(
                        RasterWriter(path, m, s, out_h, out_w, t, overwrite, cog, False,
                                     resumable=resumable, resume=resume)
                    )
                    for path, m, t in _output_specs(outputs, meta, tags, samples)
                ]  # fmt: skip
                if job is not None:
                    job.writers = writers
                tile_fn: TileFn = sampling_tile_fn(upscaler, samples, steps, seed, grid)
                executor, prefetch = None, 1
                if scheduler is not None or workers is not None:
                    from satsr.distributed import RemoteTileFn, dask_executor

                    executor = stack.enter_context(dask_executor(scheduler, workers))
                    tile_fn, prefetch = (
                        RemoteTileFn(upscaler.source or upscaler, samples, steps, seed, grid=grid),
                        2 * executor.workers,
                    )
                upscale_stream(
                    _filled_reader(reader, fill),
                    _block_writer(reader, writers, (out_h, out_w)),
                    meta.height, meta.width, tile_fn, s,
                    tile_size, overlap, out_channels=len(meta.band_names) * len(writers),
                    batch_size=batch_size, progress=progress, checkpoint=job, executor=executor,
                    prefetch=prefetch,
                )  # fmt: skip
        except KeyboardInterrupt:
            # The temporary files and the state stay for a rerun; one line says so (``satsr.cli``).
            message = job.interrupted() if job is not None else f"interrupted: {output} was not written"
            raise Interrupted(message) from None
        except BaseException:
            if job is not None:
                job.discard()
            raise
        for writer in writers:
            writer.publish()
        if job is not None:
            job.discard()
        if quicklook is not None:
            write_quicklook(reader, output, upscaler, quicklook)
        _write_stac(output, outputs, quicklook, input, acquired, reader, upscaler, s, seed, samples, steps)
    return output


def _model_band_names(upscaler: Upscaler) -> list[str] | None:
    """The model's bands as canonical Sentinel-2 names (red, green, blue: B04, B03, B02), else None."""
    try:
        return [canonical_band_name(b) for b in upscaler.bands]
    except ValueError:
        return None


def open_for_model(
    input: str | Path,
    bands: Sequence[str | int] | None,
    upscaler: Upscaler,
    scaling: ReflectanceScaling | None = None,
    mask_clouds: bool = False,
    grid: Grid | None = None,
) -> RasterReader:
    """The input's bands as the model takes them, by name where the input names them.

    Without ``bands``, named inputs give the model's bands in its order (any extra bands are left out);
    unnamed ones are taken as the model's bands in file order, with a warning saying so. Bands picked
    by name in another order than the model's are put in its order. Refuses a band count the model
    does not take, naming the bands.
    """
    reader = RasterReader(input, bands, scaling, mask_clouds, grid)
    names, wanted = list(reader.meta.band_names), _model_band_names(upscaler)
    by_name = reader.named and wanted is not None and names != wanted and set(wanted) <= set(names)
    if by_name and wanted is not None and (bands is None or sorted(names) == sorted(wanted)):
        indexes = [reader.indexes[names.index(b)] for b in wanted]  # pick or reorder by name
        reader.close()
        reader, names = RasterReader(input, indexes, scaling, mask_clouds, grid), wanted
    if len(names) != len(upscaler.bands):
        reader.close()
        raise RasterError(
            f"{input}: model {upscaler.name} needs {len(upscaler.bands)} bands "
            f"({', '.join(upscaler.bands)}), the input has {len(names)} ({', '.join(names)}); "
            "select them with --bands"
        )
    if reader.named and wanted is not None and names != wanted:
        log.warning("%s: bands %s are given to model %s as its %s", input, ", ".join(names), upscaler.name,
                    ", ".join(upscaler.bands))  # fmt: skip
    elif not reader.named and bands is None:
        log.warning(
            "%s: its bands have no names (no band descriptions, none in the file name); taken as %s, the "
            "bands of model %s, in file order (--bands picks others by 1-based index)",
            input, ", ".join(upscaler.bands), upscaler.name,
        )  # fmt: skip
    return reader


def _write_stac(
    output: Path,
    outputs: list[Path],
    quicklook: str | Path | None,
    input: str | Path,
    acquired: Acquired | None,
    reader: RasterReader,
    upscaler: Upscaler,
    s: float,
    seed: int,
    samples: int,
    steps: int | None,
) -> None:
    """The STAC Item beside the output (``satsr.io.stac``)."""
    meta = reader.meta
    assets = {"data": (output, f"{upscaler.name} x{s}", ["data"])}
    if len(outputs) > 1:
        assets["uncertainty"] = (outputs[1], "per-pixel per-band std of the samples", ["metadata"])
    if quicklook is not None:
        assets["overview"] = (Path(quicklook), "input | output", ["overview"])
    provenance = {
        "version": VERSION, "model": upscaler.name, "weights_sha256": upscaler.weights_sha256,
        "scale": s, "seed": seed, "samples": samples,
        "steps": (steps or upscaler.default_steps) if upscaler.stochastic else None,
        "lr_consistency": getattr(upscaler.network, "lr_consistency", None), "bands": list(meta.band_names),
        "detail": getattr(upscaler.network, "detail", None),
    }  # fmt: skip
    item = build_item(output, meta.refined(s), [Path(input)], acquired, provenance, assets)
    write_item(stac_path(output), item)


def _output_specs(
    outputs: list[Path], meta: RasterMeta, tags: dict[str, str], samples: int
) -> list[tuple[Path, RasterMeta, dict[str, str]]]:
    """The SR image keeps the input's dtype; the uncertainty is float32 reflectance with NaN nodata."""
    specs = [(outputs[0], meta, tags)]
    if len(outputs) > 1:
        std_meta = dataclasses.replace(
            meta, dtype=np.dtype(np.float32), nodata=None, scaling=ReflectanceScaling.identity()
        )
        std_tags = {
            **tags,
            "SATSR_UNCERTAINTY": f"per-pixel per-band std over {samples} samples, reflectance",
        }
        specs.append((outputs[1], std_meta, std_tags))
    return specs


def _filled_reader(reader: RasterReader, fill: np.ndarray) -> Callable[[Tile], np.ndarray]:
    """Reads a window and gives masked pixels the band means, only so the network sees no outliers.

    These pixels are masked again in the output; the fill never reaches the user as data.
    """

    def read(tile: Tile) -> np.ndarray:
        reflectance, usable = reader.read_bands(Window(tile.col, tile.row, tile.width, tile.height))
        return np.where(usable, reflectance, fill[:, None, None])

    return read


def _block_writer(
    reader: RasterReader, writers: list[RasterWriter], out_size: tuple[int, int]
) -> Callable[[int, int, np.ndarray], None]:
    """Writes final HR blocks (channels split across ``writers``) masked by the LR validity, band by
    band: an HR pixel's band is valid when that band of the LR pixel holding its centre is."""
    channels = len(reader.meta.band_names)
    height, width = reader.meta.height, reader.meta.width
    out_h, out_w = out_size

    def write(row: int, col: int, block: np.ndarray) -> None:
        _, h, w = block.shape
        rows, cols = lr_pixels(row, h, height, out_h), lr_pixels(col, w, width, out_w)
        window = Window(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
        valid = reader.read_usable(window)[:, rows - rows[0]][:, :, cols - cols[0]]
        for k, writer in enumerate(writers):
            writer.write(row, col, block[k * channels : (k + 1) * channels], valid)

    return write


def quicklook_channels(upscaler: Upscaler) -> tuple[int, int, int]:
    """The (red, green, blue) channels of a quick-look: where the model's bands have them (the input's
    channels are the model's bands, in its order), else the first band as grey."""
    return rgb_channels(upscaler.bands) or (0, 0, 0)


def write_quicklook(reader: RasterReader, output: Path, upscaler: Upscaler, quicklook: str | Path) -> None:
    """Input and result side by side, both read decimated so the PNG stays small for any scene."""
    lr, _ = reader.read_decimated(QUICKLOOK_SIDE)
    with RasterReader(output, scaling=reader.meta.scaling) as sr_reader:
        sr, _ = sr_reader.read_decimated(QUICKLOOK_SIDE)
    panels = {"LR (input)": lr, f"SR {upscaler.name}": sr}
    Path(quicklook).parent.mkdir(parents=True, exist_ok=True)
    render_crops(panels, rgb=quicklook_channels(upscaler)).save(quicklook)
