"""Continuous-scale SR on aerial pictures never trained on, at many scales (``make evaluate-continuous``).

Pairs: the test split of ``satsr.data.sources.aerial_rgb_images`` (RSSCN7, AID, NEON; a fixed 15 %
by file index per folder), ``--images`` of them spread evenly (or ``--per-kind`` of each kind of place,
``satsr.data.sources.AERIAL_KINDS``, reported per kind too), each a central HR crop of at most
``--crop`` px degraded by antialiased bicubic to ``floor(crop / s)`` (E2DiffSR's protocol). Every
scale gets one ``satsr.evaluation.harness.evaluate`` run (bicubic + the given models; report under
OUT/xS), and OUT/summary.md gathers PSNR, LPIPS, FID and the LR-grid pattern (blobs; the HR truth's
own value with it) against the scale; then the time per
512 x 512 output at x4 of each model (and of ``--ldm``) in one run.

Usage: python scripts/eval_continuous.py OUT --model NAME=DIR [NAME=DIR ...] [--scales 2 2.6 ...]
       [--split val]   (the validation split, to choose between candidates without looking at the test)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from satsr.data.sources import aerial_kind, aerial_rgb_images
from satsr.evaluation.datasets import RGB_BAND_NAMES, EvalPair
from satsr.evaluation.harness import Method, evaluate, upscaler_method
from satsr.evaluation.kinds import kind_tables
from satsr.evaluation.metrics import lr_grid_pattern
from satsr.models.registry import Upscaler, load

SCALES = [2.0, 2.6, 3.0, 3.4, 4.0, 6.0, 8.0, 10.0]


def pairs_at(images: list[Path], scale: float, crop: int) -> list[EvalPair]:
    pairs = []
    for path in images:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
        side_lr = math.floor(min(crop, *pixels.shape[1:]) / scale)
        side = round(side_lr * scale)
        top, left = (pixels.shape[1] - side) // 2, (pixels.shape[2] - side) // 2
        hr = torch.from_numpy(np.ascontiguousarray(pixels[:, top : top + side, left : left + side]))
        lr = F.interpolate(
            hr[None], size=(side_lr, side_lr), mode="bicubic", antialias=True, align_corners=False
        )
        pairs.append(
            EvalPair(
                f"{path.parent.name}_{path.stem}",
                lr[0].clamp(0, 1).numpy(),
                hr.numpy(),
                RGB_BAND_NAMES,
                "bicubic",
                str(path),
                kind=aerial_kind(path),
            )
        )
    return pairs


def time_512(model: Upscaler, repeats: int = 3) -> float:
    """Seconds per 512 x 512 output at x4 (one 128 x 128 LR window), median of ``repeats`` after a warm-up."""
    lr = torch.rand(1, len(model.bands), 128, 128) * (0.3 if len(model.bands) == 4 else 1.0)
    extra = {"scale": 4.0} if model.continuous else {}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model(lr, seeds=[0], **extra)  # deterministic models ignore the seeds
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--model", nargs="+", required=True, help="NAME=DIR (a model folder) or a bundled name"
    )
    parser.add_argument("--scales", type=float, nargs="+", default=SCALES)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument(
        "--per-kind", type=int, default=0, help="this many pictures of each kind of place instead of --images"
    )
    parser.add_argument("--crop", type=int, default=240)
    parser.add_argument("--ldm", default="s2-rgbn-x4-ldm", help="model to time against ('' to skip)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-time", action="store_true")
    parser.add_argument(
        "--split", default="test", choices=["val", "test"], help="val: for choosing between candidates"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {}
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = load(path or name)
    pool = aerial_rgb_images(args.split)
    if args.per_kind:
        groups: dict[str, list[Path]] = {}
        for path in pool:
            groups.setdefault(aerial_kind(path), []).append(path)
        images = []
        for group in groups.values():
            picks = np.linspace(0, len(group) - 1, min(args.per_kind, len(group))).round().astype(int)
            images += [group[i] for i in picks]
    else:
        picks = np.linspace(0, len(pool) - 1, min(args.images, len(pool))).round().astype(int)
        images = [pool[i] for i in picks]
    summary: dict[float, dict] = {}
    kinds: dict[float, dict] = {}
    truth: dict[float, float] = {}  # the HR truth's own LR-grid pattern (what a picture of the ground has)
    for s in args.scales:
        methods: dict[str, Method] = {name: upscaler_method(m, scale=s) for name, m in models.items()}
        start = time.perf_counter()
        title = f"Aerial RGB {args.split} split, {len(images)} pictures, x{s:g} (bicubic degradation)"
        pairs = pairs_at(images, s, args.crop)
        result = evaluate(methods, pairs, args.out / f"x{s:g}", s, crops=2, title=title)
        summary[s] = result["results"]
        hr_grids = [lr_grid_pattern(torch.from_numpy(p.hr)[None], p.lr.shape[-2:])[0] for p in pairs]
        truth[s] = float(np.mean(hr_grids))
        kinds[s] = result.get("results_by_kind", {})
        print(f"x{s:g} ({time.perf_counter() - start:.0f} s):", json.dumps(result["results"]), flush=True)
    names = list(next(iter(summary.values())))
    lines = [
        f"# Continuous-scale SR on {len(images)} aerial {args.split} pictures "
        f"(central crops of <= {args.crop} px)",
        "",
    ]
    grid = ("grid", "LR-grid pattern ↓ (detail laid out in LR pixels: blobs, cells)")
    for key, header in (("psnr", "PSNR dB ↑"), ("lpips", "LPIPS ↓"), ("fid", "FID ↓"), grid):
        lines += [f"## {header}", "", "| method | " + " | ".join(f"x{s:g}" for s in summary) + " |",
                  "|---|" + "---|" * len(summary)]  # fmt: skip
        for name in names:
            cells = [summary[s][name].get(key) for s in summary]
            lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.4g}" for v in cells) + " |")
        if key == "grid":
            lines.append("| HR truth | " + " | ".join(f"{truth[s]:.4g}" for s in summary) + " |")
        lines.append("")
    lines += ["## LPIPS / bicubic's LPIPS", "", "| method | " + " | ".join(f"x{s:g}" for s in summary) + " |",
              "|---|" + "---|" * len(summary)]  # fmt: skip
    for name in names[1:]:
        ratios = [summary[s][name]["lpips"] / summary[s]["bicubic"]["lpips"] for s in summary]
        lines.append(f"| {name} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    header = "| method | " + " | ".join(f"x{s:g}" for s in summary) + " |"
    lines += ["", "## PSNR - bicubic's PSNR (dB)", "", header, "|---|" + "---|" * len(summary)]
    for name in names[1:]:
        gaps = [summary[s][name]["psnr"] - summary[s]["bicubic"]["psnr"] for s in summary]
        lines.append(f"| {name} | " + " | ".join(f"{g:+.2f}" for g in gaps) + " |")
    for s, table in kinds.items():
        if len(table) > 1:  # more than one kind of place
            lines += ["", f"## Per kind of place at x{s:g}", "", *kind_tables(table, "bicubic")]
    if not args.no_time:
        timed = dict(models)
        if args.ldm:
            timed[args.ldm] = load(args.ldm)
        lines += ["", f"## Time per 512 x 512 output at x4 ({torch.get_num_threads()} threads)", ""]
        for name, model in timed.items():
            lines.append(f"- {name}: {time_512(model):.2f} s")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(
        json.dumps({f"{s:g}": r for s, r in summary.items()}, indent=1) + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
