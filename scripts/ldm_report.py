"""Measurements for a diffusion model's card that ``satsr evaluate`` does not make: speed against the
fast model in the same run, uncertainty calibration, and seams across tile borders.

Usage: python scripts/ldm_report.py OUT_DIR [--model s2-rgbn-x4-ldm] [--steps 20] [--samples 8]

Writes OUT_DIR/report.json, OUT_DIR/calibration.png (LR | mean SR | HR | uncertainty | |error| of one
crop), OUT_DIR/calibration_deciles.png (error per uncertainty decile) and OUT_DIR/seams.png
(tiled | one window | difference x 100); prints the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import spearmanr

import satsr
from satsr.data.sources import shared_data_dir
from satsr.evaluation.datasets import load_pairs
from satsr.evaluation.places import place_pairs
from satsr.io.bands import S2_DISPLAY_WHITE
from satsr.io.stream import upscale_stream
from satsr.io.tiling import Tile
from satsr.models.registry import Upscaler
from satsr.models.sampling import sampling_tile_fn

TEST_SCENE = "s2/dsen2_l1c"  # T33UUB: never used for training
RGB = (2, 1, 0)  # B04, B03, B02 of B02, B03, B04, B08


def rgb(x: np.ndarray) -> np.ndarray:
    """(C, H, W) reflectance -> (H, W, 3) uint8 true colour."""
    return (np.clip(x[list(RGB)] / S2_DISPLAY_WHITE, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def grey(x: np.ndarray, top: float) -> np.ndarray:
    """(H, W) -> (H, W, 3) uint8, ``top`` shown as white."""
    g = (np.clip(x / top, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def nearest(x: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed(ldm: Upscaler, fast: Upscaler, lr: np.ndarray, steps: int) -> dict[str, float]:
    """Seconds per 512 x 512 output (one 128 x 128 LR window) for both models, best of a few runs."""
    with torch.inference_mode():
        fast_s = best_of(lambda: fast(lr[None]), 3)
        ldm_s = best_of(lambda: ldm(lr[None], seeds=[0], steps=steps), 2)
    return {"fast_s": fast_s, "ldm_s": ldm_s, "ratio": ldm_s / fast_s, "steps": steps}


def calibration(ldm: Upscaler, steps: int, samples: int, out: Path) -> dict[str, object]:
    """Spearman correlation of the per-pixel std of ``samples`` draws with the error of their mean, on all
    the held-apart places (``place_pairs("test")``) and per kind of place."""
    pairs = place_pairs("test")
    tile_fn = sampling_tile_fn(ldm, samples, steps, seed=0)
    stds, errors, panels, kinds = [], [], [], []
    for pair in pairs:
        c, h, w = pair.lr.shape
        with torch.inference_mode():
            result = tile_fn(pair.lr[None], [Tile(0, 0, h, w)])[0]
        mean, std = result[:c], result[c:]
        error = np.abs(mean - pair.hr)
        stds.append(std.ravel())
        errors.append(error.ravel())
        kinds.append(pair.kind)
        if len(panels) < 1:
            panels = [
                rgb(nearest(pair.lr.transpose(1, 2, 0), 4).transpose(2, 0, 1)), rgb(mean), rgb(pair.hr),
                grey(std.mean(axis=0), 0.01), grey(error.mean(axis=0), 0.02),
            ]  # fmt: skip
    std_all, error_all = np.concatenate(stds), np.concatenate(errors)
    rho = float(spearmanr(std_all, error_all).statistic)
    per_kind = {}
    for kind in dict.fromkeys(kinds):
        picked = [i for i, k in enumerate(kinds) if k == kind]
        kind_std, kind_error = (np.concatenate([x[i] for i in picked]) for x in (stds, errors))
        per_kind[kind] = float(spearmanr(kind_std, kind_error).statistic)
    # Mean absolute error per decile of uncertainty: should rise from the first to the last.
    edges = np.quantile(std_all, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, std_all, side="right") - 1, 0, 9)
    by_decile = [float(error_all[bins == b].mean()) for b in range(10)]
    Image.fromarray(np.concatenate(panels, axis=1)).save(out / "calibration.png")
    decile_chart(by_decile, rho).save(out / "calibration_deciles.png")
    return {
        "pairs": len(pairs), "samples": samples, "steps": steps, "spearman": rho,
        "spearman_by_kind": per_kind,
        "mae_by_uncertainty_decile": by_decile, "mean_std": float(std_all.mean()),
    }  # fmt: skip


def decile_chart(mae: list[float], rho: float) -> Image.Image:
    """Bars: mean absolute error of the mean SR per decile of predicted uncertainty (low to high)."""
    from PIL import ImageDraw

    width, height, pad = 420, 260, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    top = max(mae)
    bar = (width - 2 * pad) / len(mae)
    for k, value in enumerate(mae):
        x0 = pad + k * bar + 3
        y0 = height - pad - (height - 2 * pad) * value / top
        draw.rectangle([x0, y0, x0 + bar - 6, height - pad], fill=(70, 110, 180))
        draw.text((x0, height - pad + 4), str(k + 1), fill="black")
    draw.line([pad, height - pad, width - pad, height - pad], fill="black")
    draw.text((pad, 8), f"MAE per uncertainty decile (max {top:.4f}); Spearman {rho:.2f}", fill="black")
    draw.text((pad, height - 16), "uncertainty decile (1 = most certain)", fill="black")
    return image


def seams(ldm: Upscaler, lr: np.ndarray, steps: int, out: Path) -> dict[str, float]:
    """One sample of an LR window tiled in 48 px tiles (overlap 12) against the same window in one call."""
    c, h, w = lr.shape
    tile_fn = sampling_tile_fn(ldm, 1, steps, seed=3)
    tiled = np.zeros((c, 4 * h, 4 * w), np.float32)

    def write(row: int, col: int, block: np.ndarray) -> None:
        tiled[:, row : row + block.shape[1], col : col + block.shape[2]] = block

    with torch.inference_mode():
        upscale_stream(lambda t: lr[:, t.row : t.row + t.height, t.col : t.col + t.width], write, h, w,
                       tile_fn, 4, 48, 12, out_channels=c)  # fmt: skip
        whole = tile_fn(lr[None], [Tile(0, 0, h, w)])[0]
    diff = np.abs(tiled - whole).mean(axis=0)
    # Column-to-column gradient inside the blend zones (LR columns 36-48 and 72-84) over the rest, for
    # the tiled result and for the one-window result at the same place: a seam raises the first only.
    near = np.zeros(4 * w - 1, bool)
    for start in range(36, w - 12, 36):
        near[4 * start : 4 * (start + 12)] = True

    def zone_ratio(x: np.ndarray) -> float:
        grad = np.abs(np.diff(x, axis=2)).mean(axis=(0, 1))
        return float(grad[near].mean() / grad[~near].mean())

    Image.fromarray(np.concatenate([rgb(tiled), rgb(whole), grey(diff, 0.01)], axis=1)).save(
        out / "seams.png"
    )
    return {
        "mean_abs_tiled_vs_whole": float(diff.mean()),
        "blend_zone_gradient_ratio_tiled": zone_ratio(tiled),
        "blend_zone_gradient_ratio_one_window": zone_ratio(whole),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="s2-rgbn-x4-ldm")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ldm, fast = satsr.load(args.model), satsr.load("s2-rgbn-x4-fast")
    steps = args.steps or ldm.default_steps
    scene = load_pairs(shared_data_dir() / TEST_SCENE, 4, bands=list(ldm.bands), crop=None, max_images=1)[0]
    report = {
        "model": args.model,
        "speed_512": speed(ldm, fast, scene.lr[:, :128, :128], steps),
        "seams": seams(ldm, scene.lr[:, :96, :96], steps, args.out),
        "calibration": calibration(ldm, steps, args.samples, args.out),
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
