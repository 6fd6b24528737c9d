"""Entry points for rasters: ``upscale_file`` (one raster, ``satsr upscale IN OUT``) and ``upscale_folder``
(every raster of a folder, ``satsr upscale FOLDER/ OUT/``), both through the one path of
``satsr.pipelines.scene``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import rasterio

from satsr.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE
from satsr.io.bands import ReflectanceScaling, processing_baseline_offset
from satsr.io.dates import acquisition_time
from satsr.io.grid import RasterError, RasterMeta
from satsr.io.raster import RasterReader
from satsr.io.safe import SCL_MASKED_CLASSES, is_safe, output_name
from satsr.io.stac import stac_path
from satsr.io.tiling import SceneGrid, fit_tiling
from satsr.models.registry import Upscaler
from satsr.models.sampling import sampling_tile_fn
from satsr.pipelines.bands import open_for_model
from satsr.pipelines.outputs import (
    model_provenance,
    model_tags,
    stream_to_files,
    uncertainty_path,
    write_quicklook,
    write_stac,
)
from satsr.pipelines.request import check_output_name, check_sampling, refuse_existing, requested_model
from satsr.pipelines.resume import JobState
from satsr.pipelines.scene import RasterScene

#: GDAL's block cache while streaming, MB: input blocks that overlapping windows share, and output blocks
#: until GDAL writes them (the blocks still being filled wait whole in ``satsr.io.writer.BlockAssembler``).
GDAL_CACHE_MB = 128
#: The same in bytes, as ``rasterio.Env(GDAL_CACHEMAX=...)`` takes an integer (GDAL's own "512" means MB;
#: rasterio's integer 512 meant a 512-byte cache: every overlapping window decompressed its blocks again).
GDAL_CACHE_BYTES = GDAL_CACHE_MB * 2**20
#: Files a folder run takes (besides ``.SAFE`` products).
FOLDER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


def upscale_file(
    input: str | Path, output: str | Path, model: str | Path | Upscaler = DEFAULT_MODEL,
    scale: float | None = None, bands: Sequence[str | int] | None = None, tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP, device: str = "cpu", overwrite: bool = False, progress: bool = False,
    quicklook: str | Path | None = None, processing_baseline: str | None = None, samples: int = 1,
    steps: int | None = None, seed: int = DEFAULT_SEED, cog: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE, resumable: bool = True, scheduler: str | None = None,
    workers: int | None = None, mask_clouds: bool = False, add_bands: Sequence[str | Path] = (),
) -> Path:  # fmt: skip
    """Super-resolve one raster into a GeoTIFF on the same bounds with pixel size / scale.

    The scene is read, upscaled, blended and written window by window (memory does not grow with
    the scene). ``processing_baseline`` (e.g. "04.00") sets the BOA/RADIO_ADD_OFFSET of -1000 DN
    for baselines >= 04.00; by default integer inputs are read as DN / 10000 with no offset.
    ``samples > 1`` (diffusion models) writes the mean and ``OUTPUT-stem.uncertainty.tif``, the
    per-pixel, per-band standard deviation in reflectance. ``seed`` fixes every sample; ``cog``
    writes Cloud-Optimized GeoTIFFs; ``quicklook`` names a PNG with input and result side by side.

    ``resumable``: progress is recorded after the first row of windows, then at most every 30 s
    (``.OUTPUT.state.npz`` beside the hidden temporary file ``.OUTPUT.part``); if the process is
    killed or interrupted (Ctrl-C), running the same call again continues from there and gives the
    same pixels as an uninterrupted run.
    Other errors remove both. Only finished outputs ever appear under their own names.

    ``scheduler`` (a Dask scheduler address) or ``workers`` (a local Dask cluster of that many
    processes) runs the model calls on a cluster (``satsr.pipelines.distributed``); the pixels are the
    same. ``mask_clouds`` (Sentinel-2 L2A products) masks no-data, defective, cloud, cloud-shadow and
    cirrus pixels of the scene classification: they are written as nodata. ``add_bands``: rasters with
    more bands of the same place and date on coarser grids (the 20 m bands beside a 10 m GeoTIFF, for
    ``s2-10band``), stacked with the input's bands on its grid.
    """
    upscaler, s, bands = requested_model(model, device, scale, bands)
    check_sampling(upscaler, samples, steps)
    output = check_output_name(output)
    outputs = [output] + ([uncertainty_path(output)] if samples > 1 else [])
    refuse_existing(outputs, overwrite)
    more = tuple(Path(p) for p in add_bands)
    run = _FileRun(upscaler, s, (samples, steps, seed), batch_size, cog, overwrite, progress,
                   (scheduler, workers), more)  # fmt: skip
    offset = None if processing_baseline is None else processing_baseline_offset(processing_baseline)
    scaling = None if offset is None else ReflectanceScaling(offset=offset)
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        open_for_model(input, bands, upscaler, scaling, mask_clouds, more=more) as reader,
    ):
        height, width = reader.meta.height, reader.meta.width
        tiling = fit_tiling(tile_size, overlap, height, width, upscaler.grid_multiple)  # small: one window
        run.stream(reader, Path(input), outputs, tiling, resumable, mask_clouds)
        if quicklook is not None:
            write_quicklook(reader, output, upscaler, quicklook)
        run.describe(reader, Path(input), outputs, quicklook)
    return output


@dataclass(frozen=True)
class _FileRun:
    """The options of one ``upscale_file`` call, and its two steps: stream, then describe the outputs."""

    upscaler: Upscaler
    scale: float
    sampling: tuple[int, int | None, int]  # samples, steps, seed
    batch_size: int
    cog: bool
    overwrite: bool
    progress: bool
    dask: tuple[str | None, int | None]  # scheduler address, local workers (satsr.pipelines.distributed)
    more: tuple[Path, ...] = ()  # rasters with more bands of the input (``add_bands``)

    def meta(self, reader: RasterReader) -> RasterMeta:
        """The input's grid and DN convention with the output's band names (a subset of the bands read,
        when ``--bands`` picks the outputs of ``s2-10band``)."""
        outputs = self.upscaler.bands if self.upscaler.outputs else reader.meta.band_names
        return replace(reader.meta, band_names=tuple(outputs))

    def tags(self, reader: RasterReader, input: Path, mask_clouds: bool) -> dict[str, str]:
        (samples, steps, seed), network = self.sampling, self.upscaler.network
        names = " + ".join(p.name for p in (input, *self.more))
        tags = {**model_tags(self.upscaler, seed, steps), "SATSR_INPUT": names,
                "SATSR_SAMPLES": str(samples), "SATSR_SCALE": f"{self.scale:g}"}  # fmt: skip
        if mask_clouds:
            classes = ", ".join(map(str, SCL_MASKED_CLASSES))
            tags["SATSR_MASK_CLOUDS"] = f"scene classification classes {classes}"
        if getattr(network, "detail", None) is not None:  # how far samples depart from the mean (models.ldm)
            tags["SATSR_DETAIL"] = f"{network.detail:g}"
        acquired = acquisition_time(reader.tags(), input.name)
        return {**tags, **(acquired.tags() if acquired is not None else {})}

    def job(self, reader: RasterReader, input: Path, outputs: list[Path], tiling: tuple[int, int],
            tags: dict[str, str]) -> JobState:  # fmt: skip
        """The resumable job: its fingerprint holds the tags (model, seed, samples, steps, masking...)."""
        meta = self.meta(reader)
        inputs = [str(p.resolve()) for p in (input, *self.more)]
        options = {"input": inputs, "size": [meta.height, meta.width], "bands": meta.band_names,
                   "weights": self.upscaler.weights_sha256, "tile": [*tiling, self.batch_size],
                   "cog": self.cog, "tags": tags}  # fmt: skip
        return JobState(outputs[0], outputs, json.dumps(options, sort_keys=True))

    def stream(self, reader: RasterReader, input: Path, outputs: list[Path], tiling: tuple[int, int],
               resumable: bool, mask_clouds: bool) -> None:  # fmt: skip
        meta, tags = self.meta(reader), self.tags(reader, input, mask_clouds)
        scene = RasterScene([reader])  # its fill refuses an all-nodata raster before anything is written
        grid = SceneGrid((meta.height, meta.width), self.scale) if self.upscaler.continuous else None
        job = self.job(reader, input, outputs, tiling, tags) if resumable else None
        with ExitStack() as stack:
            tile_fn, executor, prefetch = sampling_tile_fn(self.upscaler, *self.sampling, grid), None, 1
            if self.dask != (None, None):
                from satsr.pipelines.distributed import RemoteTileFn, dask_executor

                executor = stack.enter_context(dask_executor(*self.dask))
                upscaler = self.upscaler
                tile_fn = RemoteTileFn(
                    upscaler.source or upscaler, *self.sampling, grid=grid,
                    scale=upscaler.scale if upscaler.scales else None,
                    outputs=upscaler.bands if upscaler.outputs else (),
                )  # fmt: skip
                prefetch = 2 * executor.workers
            stream_to_files(
                scene, meta, outputs, tags, self.scale, tile_fn, tiling, self.sampling[0], self.overwrite,
                self.cog, job, batch_size=self.batch_size, progress=self.progress, executor=executor,
                prefetch=prefetch, band_validity=self.upscaler.outputs,
            )  # fmt: skip

    def describe(
        self, reader: RasterReader, input: Path, outputs: list[Path], quicklook: str | Path | None
    ) -> None:
        """The STAC Item beside the output."""
        (samples, steps, seed), upscaler, meta = self.sampling, self.upscaler, self.meta(reader)
        provenance: dict[str, Any] = {
            **model_provenance(upscaler, self.scale, seed), "samples": samples,
            "steps": (steps or upscaler.default_steps) if upscaler.stochastic else None,
            "bands": list(meta.band_names), "detail": getattr(upscaler.network, "detail", None),
        }  # fmt: skip
        assets = {"data": (outputs[0], f"{upscaler.name} x{self.scale}", ["data"])}
        if len(outputs) > 1:
            assets["uncertainty"] = (outputs[1], "per-pixel per-band std of the samples", ["metadata"])
        acquired = acquisition_time(reader.tags(), input.name)
        sources = [input, *self.more]
        write_stac(outputs[0], meta.refined(self.scale), sources, acquired, provenance, assets, quicklook,
                   "input | output")  # fmt: skip


@dataclass(frozen=True)
class FolderResult:
    """One raster of a folder run: done, skipped (done before), or failed with ``error``."""

    input: Path
    output: Path
    total: int  # rasters in the folder
    skipped: bool = False
    error: str | None = None


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of rasters (a ``.SAFE`` product is a folder too, but one raster)."""
    return path.is_dir() and not is_safe(path)


def folder_inputs(folder: Path, output: Path, quicklook: Path | None) -> list[tuple[Path, Path, Path | None]]:
    """(input, output, quick-look) per raster of ``folder``: the same file names in ``output``
    (``satsr.io.safe.output_name``), and with ``quicklook``, a PNG each in that folder."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FOLDER_SUFFIXES or is_safe(p))
    if not files:
        raise RasterError(f"{folder}: no rasters (.tif, .tiff, .jp2, .vrt, .SAFE, .SAFE.zip) in this folder")
    pngs = [quicklook / Path(output_name(f)).with_suffix(".png").name if quicklook else None for f in files]
    return [(f, output / output_name(f), png) for f, png in zip(files, pngs, strict=True)]


def upscale_folder(
    folder: Path, output: Path, model: Upscaler, quicklook: Path | None = None, keep_going: bool = False,
    overwrite: bool = False, **options: Any,
) -> Iterator[FolderResult]:  # fmt: skip
    """``upscale_file`` (with ``options``) on every raster of ``folder``, yielding each result in turn.

    A file whose output and STAC Item exist is skipped (done before: so the same call continues an
    interrupted folder run) unless ``overwrite``; a file that fails stops the run after its result,
    unless ``keep_going``.
    """
    inputs = folder_inputs(folder, output, quicklook)
    for src, dst, png in inputs:
        if not overwrite and dst.exists() and stac_path(dst).exists():
            yield FolderResult(src, dst, len(inputs), skipped=True)
            continue
        try:
            upscale_file(src, dst, model, overwrite=overwrite, quicklook=png, **options)
        except (RasterError, ValueError) as err:
            yield FolderResult(src, dst, len(inputs), error=str(err))
            if not keep_going:
                return
            continue
        yield FolderResult(src, dst, len(inputs))
