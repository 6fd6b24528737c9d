"""Multi-revisit fusion against N, its ablations and baselines (``make evaluate-fusion``).

Simulated revisits of the held-apart scene (``satsr.data.sources`` test split: T33UUB) and the real
Deimos-2 sample; every N gets one ``satsr.evaluation.harness.evaluate`` run (report + crops under
OUT/nN), and OUT/summary.md gathers LPIPS, PSNR and time against N.

The real-revisit figures of the model card come from ``scripts/eval_fusion_real.py``.

Usage: python scripts/eval_fusion.py OUT [--fusion DIR] [--pairs 12] [--counts 1 2 4 8 16] [--steps K]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from satsr.data.sources import s2_rgbn_scenes, shared_data_dir
from satsr.evaluation.harness import Method, PairMethod, bicubic_upsample, evaluate, upscaler_method
from satsr.evaluation.revisits import (
    best_single_oracle,
    deimos_pair,
    fusion_method,
    mean_of_singles,
    median_lr,
    simulated_revisit_pairs,
)
from satsr.models.registry import Upscaler, load

OURS = "fusion (ours)"


def bicubic(lr):  # type: ignore[no-untyped-def]
    return bicubic_upsample(lr, 4)


def methods_for(
    n: int, fusion: Upscaler, single: Method, fast: Method, steps: int | None
) -> dict[str, PairMethod]:
    methods = {OURS: fusion_method(fusion, n, steps), "bicubic of median LR": median_lr(bicubic, n)}
    methods |= {
        "mean of N single SR (ldm)": mean_of_singles(single, n),
        "single SR of median LR (ldm)": median_lr(single, n),
        "best single SR (ldm, oracle pick)": best_single_oracle(single, n),
        "fast CNN of median LR": median_lr(fast, n),
    }
    return methods


def summarise(results: dict[int, dict], title: str) -> str:
    names = list(next(iter(results.values()))["results"])
    counts = sorted(results)
    lines = [f"## {title}", ""]
    for key, header in (
        ("lpips", "LPIPS ↓"),
        ("psnr", "PSNR dB ↑"),
        ("ssim", "SSIM ↑"),
        ("sec_per_mp", "s / MP"),
    ):
        lines += [f"{header} against N", "", "| method | " + " | ".join(f"N={n}" for n in counts) + " |",
                  "|---|" + "---|" * len(counts)]  # fmt: skip
        for name in names:
            cells = []
            for n in counts:
                value = results[n]["results"].get(name, {}).get(key)
                cells.append("–" if value is None or (isinstance(value, float) and math.isnan(value)) else
                             f"{value:.4f}" if key in ("lpips", "ssim") else f"{value:.2f}")  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--fusion", default="s2-rgbn-x4-fusion")
    parser.add_argument("--single", default="s2-rgbn-x4-ldm")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=None, help="default: the model's fusion settings")
    parser.add_argument("--max-dt", type=float, default=90.0)
    parser.add_argument("--skip-simulated", action="store_true")
    parser.add_argument("--skip-deimos", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    fusion = load(args.fusion)
    single = upscaler_method(load(args.single))
    fast = upscaler_method(load("s2-rgbn-x4-fast"))
    settings = fusion.fusion_config.with_steps(args.steps)
    sections = [
        f"# Multi-revisit fusion: {args.fusion} ({fusion.fusion_steps(settings)} steps, {settings.method})",
        "",
    ]
    summary: dict[str, dict] = {}
    if not args.skip_simulated:
        start = time.perf_counter()
        pairs = simulated_revisit_pairs(s2_rgbn_scenes("test"), args.pairs, args.crop, max(args.counts),
                                        args.max_dt)  # fmt: skip
        print(f"{len(pairs)} pairs with {max(args.counts)} revisits in {time.perf_counter() - start:.1f} s")
        results = {}
        for n in args.counts:
            start = time.perf_counter()
            rows = methods_for(n, fusion, single, fast, args.steps)
            results[n] = evaluate(
                rows, pairs, args.out / f"sim_n{n}", 4,
                fid=False, crops=2, title=f"{args.pairs} held-apart T33UUB crops, {n} simulated revisit(s)",
            )  # fmt: skip
            print(f"N={n}: {time.perf_counter() - start:.0f} s")
            print(json.dumps(results[n]["results"], indent=1))
        title = (
            f"Simulated revisits of T33UUB (test split, never trained on): {args.pairs} crops of "
            f"{args.crop} px, dt uniform in ±{args.max_dt:g} days, clouds filled as `satsr fuse` does"
        )
        sections.append(summarise(results, title))
        summary["simulated"] = {n: r["results"] for n, r in results.items()}
    deimos = sorted((shared_data_dir() / "pairs" / "deimos").glob("data_eopatch-*.npz"))
    if deimos and not args.skip_deimos:
        pair = deimos_pair(deimos[0])
        results = {}
        for n in [n for n in (1, 2, 3, 5) if n <= len(pair.dt_days)]:
            rows = methods_for(n, fusion, single, fast, args.steps)
            results[n] = evaluate(
                rows, [pair], args.out / f"deimos_n{n}", 4,
                fid=False, crops=1, title=f"Deimos-2 sample, {n} real S2 revisit(s) (nearest dates first)",
            )  # fmt: skip
            print(f"Deimos N={n}:", json.dumps(results[n]["results"], indent=1))
        dts = ", ".join(f"{d:g}" for d in pair.dt_days)
        title = (f"Real revisits: Deimos-2 sample {pair.name}, S2 dt = {dts} days (nearest first); "
                 "target rescaled per band to the S2 median's mean/std")  # fmt: skip
        sections.append(summarise(results, title))
        summary["deimos"] = {n: r["results"] for n, r in results.items()}
    (args.out / "summary.md").write_text("\n".join(sections) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
