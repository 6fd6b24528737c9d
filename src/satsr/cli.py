"""The ``satsr`` command: thin argument parsing over ``satsr.pipelines`` (and ``satsr.evaluation``,
``satsr.training``).

Only light modules are imported at the top: torch and the models load when a command runs, so
``satsr --help`` and ``satsr --version`` answer at once.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from satsr.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FUSION_MODEL,
    DEFAULT_MIN_CLEAR,
    DEFAULT_MODEL,
    DEFAULT_OVERLAP,
    DEFAULT_SEED,
    DEFAULT_TILE_SIZE,
    VERSION,
)

#: Exit status of a command that failed with a clear error.
EXIT_ERROR = 2
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in ``--help`` where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (not the one at set-up)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def _log_to_stderr() -> None:
    """satsr's messages (info and up) on stderr as ``satsr: message``, once per process."""
    logger = logging.getLogger("satsr")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("satsr: %(message)s"))
        logger.addHandler(handler)


def _models(_: argparse.Namespace) -> int:
    from satsr.models.registry import bundled_models, read_config

    models = bundled_models()
    if not models:
        print("no bundled models")
    for name, folder in models.items():  # the config alone: no weights are loaded to list models
        print(f"{name:22s} {read_config(folder).get('summary', '')}")
    return 0


#: Exit status of a folder run with --keep-going in which some files failed (the others are done).
EXIT_SOME_FAILED = 1


def _upscale(args: argparse.Namespace) -> int:
    from satsr.models.registry import load, resolve_device, set_lr_consistency
    from satsr.pipelines.files import is_folder, upscale_file, upscale_folder

    upscaler = load(args.model, device=resolve_device(args.device))
    if args.no_lr_consistency:
        set_lr_consistency(upscaler, False)
    options = {
        "scale": args.scale, "bands": args.bands, "tile_size": args.tile_size, "overlap": args.overlap,
        "overwrite": args.overwrite, "progress": True, "processing_baseline": args.processing_baseline,
        "samples": args.samples, "steps": args.steps, "seed": args.seed, "cog": args.cog,
        "batch_size": args.batch_size, "scheduler": args.scheduler, "workers": args.workers,
        "mask_clouds": args.mask_clouds,
    }  # fmt: skip
    if not is_folder(args.input):
        output = upscale_file(
            args.input, args.output, upscaler, quicklook=args.quicklook, add_bands=args.add_bands, **options
        )
        print(output)
        return 0
    if args.add_bands:
        raise ValueError("--add-bands adds bands to one raster; it does not apply to a folder")
    results = upscale_folder(args.input, args.output, upscaler, args.quicklook, args.keep_going, **options)
    failed: list[str] = []
    total = 0
    for k, result in enumerate(results):
        total = result.total
        if result.skipped:
            print(
                f"satsr: {result.output} exists (done before), skipped; --overwrite replaces it",
                file=sys.stderr,
            )
        elif result.error is None:
            print(result.output)
        else:
            print(f"satsr: error: {result.error}", file=sys.stderr)
            if not args.keep_going:
                print(f"satsr: stopped at {result.input.name} ({k} of {result.total} files done before it); "
                      "--keep-going goes on past files that fail", file=sys.stderr)  # fmt: skip
                return EXIT_ERROR
            failed.append(result.input.name)
    if failed:
        print(f"satsr: {len(failed)} of {total} files failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from satsr.evaluation.harness import evaluate, load_pairs, upscaler_method
    from satsr.io.grid import RasterError
    from satsr.models.registry import load, resolve_device, set_lr_consistency

    upscalers = [load(name, device=resolve_device(args.device)) for name in args.model]
    if args.protocol == "dsen2":
        return _evaluate_sharpening(args, upscalers)
    scale = args.scale if args.scale is not None else upscalers[0].scale
    pairs = load_pairs(
        args.data, scale, bands=list(upscalers[0].bands), degradation=args.degradation,
        crop=args.crop or None, max_images=args.max_images,
    )  # fmt: skip
    if not pairs:
        raise RasterError(f"{args.data}: no image pairs with the model's bands to evaluate")
    methods = {}
    for upscaler in upscalers:
        if upscaler.scale != scale and not upscaler.continuous:
            raise RasterError(f"model {upscaler.name} supports scale {upscaler.scale} only, got {scale}")
        if not upscaler.stochastic:
            methods[upscaler.name] = upscaler_method(upscaler, args.tile_size, args.overlap, scale=scale)
            continue
        for consistency in {"on": [True], "off": [False], "both": [True, False]}[args.lr_consistency]:
            for steps in args.steps or [None]:
                for samples in args.samples:
                    label = f"{upscaler.name} ({steps or upscaler.default_steps} steps, " + (
                        f"mean of {samples}" if samples > 1 else "1 sample"
                    )
                    label += ")" if consistency else ", no LR consistency)"
                    variant = copy.deepcopy(upscaler) if not consistency else upscaler
                    if not consistency:
                        set_lr_consistency(variant, False)
                    methods[label] = upscaler_method(
                        variant, args.tile_size, args.overlap, samples, steps, args.seed, scale
                    )
    results = evaluate(methods, pairs, args.output, scale, fid=not args.no_fid, title=args.title or "")
    print(f"{args.output / 'report.md'} ({len(pairs)} pairs, methods: bicubic, {', '.join(methods)})")
    return 0 if results else 1


def _evaluate_sharpening(args: argparse.Namespace, upscalers: list) -> int:
    """``--protocol dsen2``: ten-band models' 20 m bands against bicubic and high-pass injection."""
    from satsr.evaluation.sharpening import baselines, folder_band_scenes, sharpening_report, ten_band_method

    methods = baselines()
    for upscaler in upscalers:
        if not upscaler.needs_all_bands:
            raise ValueError(
                f"--protocol dsen2 scores ten-band models (s2-10band); {upscaler.name} is not one"
            )
        methods[upscaler.name] = ten_band_method(upscaler)
    scenes = folder_band_scenes(args.data)
    sharpening_report(methods, scenes, args.output, args.title or f"Sharpening the 20 m bands: {args.data}")
    print(f"{args.output / 'report.md'} ({len(scenes)} places, methods: {', '.join(methods)})")
    return 0


def _fuse(args: argparse.Namespace) -> int:
    from satsr.models.registry import load, resolve_device
    from satsr.pipelines.revisits import fuse_files

    out = fuse_files(
        args.inputs, args.output, load(args.model, device=resolve_device(args.device)),
        dates=args.dates.split(",") if args.dates else None, target_date=args.target_date, bands=args.bands,
        steps=args.steps, seed=args.seed, tile_size=args.tile_size, overlap=args.overlap,
        min_clear=args.min_clear, mask_clouds=args.mask_clouds, overwrite=args.overwrite, cog=args.cog,
        progress=True, quicklook=args.quicklook,
    )  # fmt: skip
    print(out)
    return 0


def _train(args: argparse.Namespace) -> int:
    from satsr.training.cli import main as train_main

    return train_main(args.lightning_args)


def _add_upscale(sub: argparse._SubParsersAction) -> None:
    """``satsr upscale``: a raster or a folder of rasters."""
    up = sub.add_parser(
        "upscale", help="super-resolve a raster or a folder of rasters", formatter_class=_HelpFormatter
    )
    up.add_argument("input", type=Path)
    up.add_argument("output", type=Path)
    up.add_argument("--model", default=DEFAULT_MODEL, help="bundled model name or model folder")
    up.add_argument("--scale", type=float, default=None, help="upscaling factor (default: the model's)")
    up.add_argument(
        "--bands", nargs="+", default=None,
        help="band names (B04, red, ...) or 1-based indexes; for s2-10band, the output bands in that order",
    )  # fmt: skip
    up.add_argument(
        "--add-bands", nargs="+", type=Path, default=[], metavar="FILE",
        help="rasters with more bands of the same place and date on coarser grids (a 20 m GeoTIFF beside "
        "a 10 m INPUT), read with INPUT's bands",
    )  # fmt: skip
    up.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="LR tile side, pixels")
    up.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="LR tile overlap, pixels")
    up.add_argument(
        "--samples", type=int, default=1, help="samples to average; > 1 also writes the uncertainty"
    )
    up.add_argument("--steps", type=int, default=None, help="sampling steps (diffusion models)")
    up.add_argument(
        "--mask-clouds", action="store_true",
        help="S2 L2A products: mask clouds, shadows, cirrus and defects of the scene classification",
    )  # fmt: skip
    up.add_argument("--scheduler", default=None, help="run the model on the Dask cluster at this address")
    up.add_argument(
        "--workers", type=int, default=None, help="run the model on a local Dask cluster of N processes"
    )
    up.add_argument(
        "--no-lr-consistency", action="store_true",
        help="diffusion models: skip projecting the output onto the LR input (on by default)",
    )  # fmt: skip
    up.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes every sample")
    up.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tiles per model call")
    up.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs (with overviews)")
    up.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available"
    )
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    up.add_argument(
        "--quicklook", type=Path, default=None,
        help="also write an input | output RGB PNG (for a folder input: a folder of them)",
    )  # fmt: skip
    up.add_argument(
        "--keep-going", action="store_true",
        help="folder input: go on past files that fail, list them at the end and exit with 1",
    )  # fmt: skip
    up.add_argument(
        "--processing-baseline", default=None,
        help="Sentinel-2 processing baseline of the input (e.g. 04.00): >= 04.00 applies the -1000 DN offset",
    )  # fmt: skip
    up.set_defaults(func=_upscale)


def _add_fuse(sub: argparse._SubParsersAction) -> None:
    """``satsr fuse``: revisits of one place into one image."""
    fu = sub.add_parser(
        "fuse", help="fuse several revisits of one place into one super-resolved image",
        formatter_class=_HelpFormatter,
    )  # fmt: skip
    fu.add_argument(
        "inputs", nargs="+", type=Path, help="rasters of the same place (any grids; the first sets it)"
    )
    fu.add_argument("--output", type=Path, required=True)
    fu.add_argument(
        "--dates", default=None, help="D1,D2,... (YYYY-MM-DD), one per input; default: tags or names"
    )
    fu.add_argument("--target-date", default=None, help="date to reconstruct (default: the latest input)")
    fu.add_argument("--model", default=DEFAULT_FUSION_MODEL, help="bundled model name or folder")
    fu.add_argument("--bands", nargs="+", default=None, help="band names or 1-based indexes")
    fu.add_argument(
        "--steps", type=int, default=None, help="sampler steps (default: the model's fusion settings)"
    )
    fu.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes the result")
    fu.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="LR tile side, pixels")
    fu.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="LR tile overlap, pixels")
    fu.add_argument(
        "--min-clear", type=float, default=DEFAULT_MIN_CLEAR, help="drop revisits with a smaller clear share"
    )
    fu.add_argument("--mask-clouds", action="store_true", help="S2 L2A products: mask clouds from the SCL")
    fu.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    fu.add_argument("--overwrite", action="store_true")
    fu.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF (with overviews)")
    fu.add_argument("--quicklook", type=Path, default=None, help="also write a first input | output RGB PNG")
    fu.set_defaults(func=_fuse)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """``satsr evaluate``: models against bicubic."""
    ev = sub.add_parser(
        "evaluate",
        help="score models against bicubic on HR images or LR/HR pairs",
        formatter_class=_HelpFormatter,
    )
    ev.add_argument("--model", nargs="+", default=[DEFAULT_MODEL], help="bundled model names or folders")
    ev.add_argument("--data", type=Path, required=True, help="HR rasters (degraded on the fly) or hr/ + lr/")
    ev.add_argument("--scale", type=float, default=None, help="SR factor (default: the model's)")
    ev.add_argument(
        "--output", type=Path, default=Path("evaluation"), help="folder for metrics.json + report.md"
    )
    ev.add_argument("--degradation", default="auto", choices=["auto", "wald", "bicubic", "real"])
    ev.add_argument(
        "--protocol", default="wald", choices=["wald", "dsen2"],
        help="wald: HR images degraded by --degradation; dsen2: the 20 m bands of ten-band models, on pairs "
        "PREFIX_10m*.tif + PREFIX_20m*.tif in --data (every band degraded one octave, the real 20 m bands "
        "as truth)",
    )  # fmt: skip
    ev.add_argument("--crop", type=int, default=128, help="cut HR images into tiles of this side (0: whole)")
    ev.add_argument("--max-images", type=int, default=None, help="use at most this many files")
    ev.add_argument(
        "--samples",
        type=int,
        nargs="+",
        default=[1],
        help="diffusion models: samples averaged (one row each)",
    )
    ev.add_argument(
        "--steps", type=int, nargs="+", default=None, help="diffusion models: steps (one row each)"
    )
    ev.add_argument("--seed", type=int, default=DEFAULT_SEED, help="fixes every sample")
    ev.add_argument(
        "--lr-consistency", default="on", choices=["on", "off", "both"],
        help="diffusion models: LR-consistency projection on, off, or one row each",
    )  # fmt: skip
    ev.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="LR tile side, pixels")
    ev.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="LR tile overlap, pixels")
    ev.add_argument("--no-fid", action="store_true", help="skip FID (the slowest metric)")
    ev.add_argument("--title", default=None)
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.set_defaults(func=_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satsr", description="Super-resolution of satellite imagery", formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"satsr {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="list bundled models").set_defaults(func=_models)
    _add_upscale(sub)
    _add_fuse(sub)
    _add_evaluate(sub)
    tr = sub.add_parser(
        "train", add_help=False, help="LightningCLI: satsr train fit --config configs/NAME.yaml (see --help)"
    )
    tr.add_argument("lightning_args", nargs=argparse.REMAINDER)
    tr.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # everything after ``train`` belongs to LightningCLI, --help included
        return _train(argparse.Namespace(lightning_args=argv[1:]))
    args = build_parser().parse_args(argv)
    _log_to_stderr()
    try:
        return int(args.func(args))
    except (ValueError, ConnectionError) as err:  # RasterError and UnknownModelError are ValueErrors
        print(f"satsr: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:  # one line, no traceback: what was kept, how to go on
        print(f"satsr: {interrupt}" if str(interrupt) else "satsr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
