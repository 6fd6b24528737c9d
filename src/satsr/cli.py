"""The ``satsr`` command: thin argument parsing over ``satsr.pipelines``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from satsr.io.raster import RasterError
from satsr.io.tiling import DEFAULT_BATCH_SIZE
from satsr.models.registry import UnknownModelError, bundled_models, load, read_config, resolve_device
from satsr.pipelines import DEFAULT_OVERLAP, DEFAULT_SEED, DEFAULT_TILE_SIZE, upscale_file

DEFAULT_MODEL = "s2-rgbn-x4-fast"


def _models(_: argparse.Namespace) -> int:
    models = bundled_models()
    if not models:
        print("no bundled models")
    for name, folder in models.items():  # the config alone: no weights are loaded to list models
        print(f"{name:22s} {read_config(folder).get('summary', '')}")
    return 0


def _upscale(args: argparse.Namespace) -> int:
    inputs: list[tuple[Path, Path]]
    if args.input.is_dir():
        files = sorted(
            p for p in args.input.iterdir() if p.suffix.lower() in {".tif", ".tiff", ".jp2", ".vrt"}
        )
        if not files:
            raise RasterError(f"{args.input}: no rasters (.tif, .tiff, .jp2, .vrt) in this folder")
        inputs = [(f, args.output / f.with_suffix(".tif").name) for f in files]
    else:
        inputs = [(args.input, args.output)]
    upscaler = load(args.model, device=resolve_device(args.device))
    for src, dst in inputs:
        out = upscale_file(
            src, dst, upscaler, args.scale, args.bands, args.tile_size, args.overlap,
            overwrite=args.overwrite, progress=sys.stderr.isatty(),
            quicklook=args.quicklook if len(inputs) == 1 else None,
            processing_baseline=args.processing_baseline, samples=args.samples, steps=args.steps,
            seed=args.seed, cog=args.cog, batch_size=args.batch_size,
        )  # fmt: skip
        print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="satsr", description="Super-resolution of satellite imagery")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list bundled models").set_defaults(func=_models)
    up = sub.add_parser("upscale", help="super-resolve a raster or a folder of rasters")
    up.add_argument("input", type=Path)
    up.add_argument("output", type=Path)
    up.add_argument("--model", default=DEFAULT_MODEL, help="bundled model name or model folder")
    up.add_argument("--scale", type=float, default=None, help="upscaling factor (default: the model's)")
    up.add_argument("--bands", nargs="+", default=None, help="band names (B04, red, ...) or 1-based indexes")
    up.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="LR tile side, pixels")
    up.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="LR tile overlap, pixels")
    up.add_argument(
        "--samples", type=int, default=1, help="samples to average; > 1 also writes the uncertainty"
    )
    up.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion models)")
    up.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes every sample")
    up.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tiles per model call")
    up.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs (with overviews)")
    up.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available"
    )
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument("--quicklook", type=Path, default=None, help="also write an input | output RGB PNG")
    up.add_argument(
        "--processing-baseline", default=None,
        help="Sentinel-2 processing baseline of the input (e.g. 04.00): >= 04.00 applies the -1000 DN offset",
    )  # fmt: skip
    up.set_defaults(func=_upscale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RasterError, UnknownModelError, ValueError) as err:
        print(f"satsr: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
