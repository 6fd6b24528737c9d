"""What every file output gets: its writers (the image, and the uncertainty beside it), provenance tags,
a STAC Item and an optional quick-look PNG."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from satsr.defaults import VERSION
from satsr.evaluation.report import render_crops
from satsr.io.bands import ReflectanceScaling, rgb_channels
from satsr.io.dates import Acquired
from satsr.io.grid import RasterMeta
from satsr.io.raster import RasterReader
from satsr.io.stac import build_item, stac_path, write_item
from satsr.io.stream import TileFn
from satsr.io.writer import RasterWriter
from satsr.models.registry import Upscaler
from satsr.pipelines.resume import Interrupted, JobState
from satsr.pipelines.scene import Scene, run_scene

#: Largest side of the quick-look PNG panels, pixels.
QUICKLOOK_SIDE = 1024
#: (path, title, roles) of a STAC asset.
Asset = tuple[Path, str, list[str]]


def uncertainty_path(output: str | Path) -> Path:
    """``OUTPUT-stem.uncertainty.tif`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.uncertainty.tif")


def model_tags(upscaler: Upscaler, seed: int, steps: int | None) -> dict[str, str]:
    """Provenance tags of any output of ``upscaler``: model, version, seed, steps and its switches."""
    tags = {"SATSR_MODEL": upscaler.name, "SATSR_VERSION": VERSION, "SATSR_SEED": str(seed),
            "SATSR_STEPS": str(steps or upscaler.default_steps or "n/a")}  # fmt: skip
    consistency = getattr(upscaler.network, "lr_consistency", None)
    if consistency is not None:
        tags["SATSR_LR_CONSISTENCY"] = "on" if consistency else "off"
    return tags


def model_provenance(upscaler: Upscaler, scale: float, seed: int) -> dict[str, Any]:
    """The STAC Item's ``satsr:`` fields every output has (``satsr.io.stac``)."""
    return {
        "version": VERSION, "model": upscaler.name, "weights_sha256": upscaler.weights_sha256,
        "scale": scale, "seed": seed, "lr_consistency": getattr(upscaler.network, "lr_consistency", None),
    }  # fmt: skip


def open_writers(
    stack: ExitStack, specs: Sequence[tuple[Path, RasterMeta, dict[str, str]]], scale: float,
    overwrite: bool, cog: bool, resumable: bool = False, resume: bool = False,
) -> list[RasterWriter]:  # fmt: skip
    """One writer per ``(path, meta, tags)`` on the input's bounds refined by ``scale``, published together
    by the caller (so an error in one leaves none of them behind)."""
    writers = []
    for path, meta, tags in specs:
        out = meta.refined(scale)
        writer = RasterWriter(path, meta, scale, out.height, out.width, tags, overwrite, cog,
                              auto_publish=False, resumable=resumable, resume=resume)  # fmt: skip
        writers.append(stack.enter_context(writer))
    return writers


def output_specs(
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


def write_stac(
    output: Path, out_meta: RasterMeta, inputs: Sequence[Path], acquired: Acquired | None,
    provenance: Mapping[str, Any], assets: Mapping[str, Asset], quicklook: str | Path | None, look_title: str,
) -> None:  # fmt: skip
    """The STAC Item beside the output (``satsr.io.stac``), with the quick-look as its overview."""
    if quicklook is not None:
        assets = {**assets, "overview": (Path(quicklook), look_title, ["overview"])}
    item = build_item(output, out_meta, list(inputs), acquired, provenance, assets)
    write_item(stac_path(output), item)


def quicklook_channels(upscaler: Upscaler) -> tuple[int, int, int]:
    """The (red, green, blue) channels of a quick-look: where the model's bands have them (the input's
    channels are the model's bands, in its order), else the first band as grey."""
    return rgb_channels(upscaler.bands) or (0, 0, 0)


def _masked(reflectance: np.ndarray, usable: np.ndarray) -> np.ndarray:
    return np.where(usable, reflectance, np.float32(np.nan))


def write_quicklook(reader: RasterReader, output: Path, upscaler: Upscaler, quicklook: str | Path) -> None:
    """Input and result side by side, both read decimated so the PNG stays small for any scene; values
    that are nodata in their band are NaN (``to_quicklook_rgb`` shows them by the nodata rule)."""
    lr = _masked(*reader.read_decimated(QUICKLOOK_SIDE, per_band=True))
    with RasterReader(output, scaling=reader.meta.scaling) as sr_reader:
        panels = {
            "LR (input)": lr[list(upscaler.outputs)] if upscaler.outputs else lr,  # the output's bands
            f"SR {upscaler.name}": _masked(*sr_reader.read_decimated(QUICKLOOK_SIDE, per_band=True)),
        }
    Path(quicklook).parent.mkdir(parents=True, exist_ok=True)
    render_crops(panels, rgb=quicklook_channels(upscaler)).save(quicklook)


def stream_to_files(
    scene: Scene, meta: RasterMeta, outputs: list[Path], tags: dict[str, str], scale: float, tile_fn: TileFn,
    tiling: tuple[int, int], samples: int, overwrite: bool, cog: bool, job: JobState | None = None,
    not_resumed: str = "", band_validity: Sequence[int] = (), **stream: Any,
) -> None:  # fmt: skip
    """Stream ``scene`` (``run_scene``) into the writers of ``outputs`` (the image, then the uncertainty
    when ``samples > 1``) and publish them together; with a ``job``, resumable (``satsr.pipelines.resume``).
    ``band_validity``: the input band whose validity each output band takes, when they are not the same
    bands (``Upscaler.select_outputs``).

    Ctrl-C keeps a job's progress and raises ``Interrupted`` saying so (without a job: that nothing was
    written, ``not_resumed`` added); any other error removes the temporary files.
    """
    try:
        with ExitStack() as stack:
            specs = output_specs(outputs, meta, tags, samples)
            resume = job is not None and job.resuming
            writers = open_writers(stack, specs, scale, overwrite, cog, job is not None, resume)
            if job is not None:
                job.writers = writers
            channels = len(meta.band_names)

            def sink(row: int, col: int, block: np.ndarray, valid: np.ndarray) -> None:
                valid = valid[list(band_validity)] if band_validity else valid
                for k, writer in enumerate(writers):
                    writer.write(row, col, block[k * channels : (k + 1) * channels], valid)

            run_scene(scene, tile_fn, scale, *tiling, sink, channels * len(writers), checkpoint=job, **stream)
    except KeyboardInterrupt:
        # The temporary files and the state stay for a rerun; one line says so (``satsr.cli``).
        message = job.interrupted() if job is not None else f"interrupted: {outputs[0]} was not written"
        raise Interrupted(message + ("" if job is not None else not_resumed)) from None
    except BaseException:
        if job is not None:
            job.discard()
        raise
    for writer in writers:
        writer.publish()
    if job is not None:
        job.discard()
