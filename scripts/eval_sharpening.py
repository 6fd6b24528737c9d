"""Score the sharpening of Sentinel-2's 20 m bands by DSen2's protocol on places never trained on.

Usage: python scripts/eval_sharpening.py OUT_DIR --model runs/guided [--split test]

Every band is degraded one octave by Wald's protocol (10 m -> 20 m, 20 m -> 40 m); bicubic upsampling,
the high-pass-injection baseline (``satsr.models.guided``) and each GuidedSR folder sharpen the
40 m bands with the 20 m guide, and the real 20 m bands are the truth. Per place and on average: per-band
RMSE (reflectance x 10^4, i.e. L1C DN) and PSNR (data range 1), SAM (degrees) and ERGAS. Writes
OUT_DIR/report.md, OUT_DIR/metrics.json and OUT_DIR/crops.png (a red-edge and a SWIR band of T33UUB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from satsr.data.pairs import dsen2_triplet
from satsr.data.sources import s2_band_scenes
from satsr.evaluation.sharpening import band_scores
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.models.guided import GuidedSR, bicubic_up, high_pass_injection

SCALE = 2
CROP_BANDS = ("B05", "B11")  # a red-edge and a SWIR band


def load_guided(folder: Path) -> GuidedSR:
    config = json.loads((folder / "config.json").read_text())
    model = GuidedSR(**{k: v for k, v in config.items() if k not in ("architecture", "summary")})
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.eval()


def grey(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((x - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", nargs="*", default=[], type=Path)
    parser.add_argument("--split", default="test", choices=["test", "val"])
    args = parser.parse_args()
    methods = {
        "bicubic": lambda g, c: bicubic_up(c, SCALE),
        "high-pass injection": lambda g, c: high_pass_injection(g, c, S2_RGBN, S2_20M, SCALE),
    }
    for folder in args.model:
        methods[folder.name] = load_guided(folder)
    results: dict[str, dict[str, dict]] = {}
    crops: dict[str, np.ndarray] = {}
    for scene in s2_band_scenes(args.split):
        guide, coarse, truth = (x[None] for x in dsen2_triplet(scene, SCALE))
        for name, method in methods.items():
            with torch.no_grad():
                sr = method(guide, coarse)
            scores = band_scores(sr, truth, SCALE)
            results.setdefault(name, {})[scene.name] = {k: v[0].tolist() for k, v in scores.items()}
            if scene.source == "dsen2":
                crops[name] = sr[0, :, 100:200, 100:200].numpy()
        if scene.source == "dsen2":
            crops["truth (real 20 m)"] = truth[0, :, 100:200, 100:200].numpy()
    places = list(next(iter(results.values())))
    lines = [f"# 20 m bands sharpened x2 by the 10 m bands (DSen2 protocol), {args.split} places", ""]
    for place in [*places, "mean"]:
        lines += [f"## {place}", "", "| method | " + " | ".join(f"{b} RMSE / PSNR" for b in S2_20M)
                  + " | SAM ° | ERGAS |", "|---|" + "---:|" * (len(S2_20M) + 2)]  # fmt: skip
        for name, per_place in results.items():
            rows = list(per_place.values()) if place == "mean" else [per_place[place]]
            rmse, psnr_ = (np.mean([r[k] for r in rows], axis=0) for k in ("rmse", "psnr"))
            sam_, ergas_ = (float(np.mean([r[k] for r in rows])) for k in ("sam", "ergas"))
            cells = [f"{e * 1e4:.0f} / {p:.2f}" for e, p in zip(rmse, psnr_, strict=True)]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {sam_:.3f} | {ergas_:.3f} |")
            if place == "mean":
                results[name]["mean"] = {"rmse": rmse.tolist(), "psnr": psnr_.tolist(), "sam": sam_,
                                         "ergas": ergas_}  # fmt: skip
        lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(results, indent=1))
    if crops:
        truth = crops["truth (real 20 m)"]
        rows = []
        for band in CROP_BANDS:
            k = S2_20M.index(band)
            low, high = np.percentile(truth[k], [2, 98])
            rows.append(np.concatenate([grey(crops[n][k], low, high) for n in crops], axis=1))
        Image.fromarray(np.kron(np.concatenate(rows, axis=0), np.ones((2, 2), np.uint8))).save(
            args.out / "crops.png"
        )
        lines.append(f"crops.png: T33UUB, rows {', '.join(CROP_BANDS)}; columns {', '.join(crops)}")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
