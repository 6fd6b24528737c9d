"""Comparison crops of continuous-scale models on aerial pictures: rows are pictures, columns bicubic, each
model, then the HR truth. What the model cards show for texture (blobs, speckle) at a given scale.

Each picture's central ``--crop`` px is degraded by antialiased bicubic to ``floor(crop / s)`` (as
``eval_continuous.py``) and upscaled by every model through the evaluation harness, which runs models
as ``satsr upscale`` does.

Usage: python scripts/continuous_figure.py OUT.png --model NAME=DIR [NAME=DIR ...] --scale 6
       [--split val] [--classes Center RailwayStation Parking] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from eval_continuous import pairs_at
from PIL import Image

from satsr.data.sources import aerial_rgb_images
from satsr.evaluation.harness import upscaler_method
from satsr.evaluation.methods import bicubic_upsample
from satsr.models.registry import load

#: Default rows: a town centre, a railway station and a car park (where the blobs showed at x6).
DEFAULT_CLASSES = ("Center", "RailwayStation", "Parking")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", nargs="+", required=True, help="NAME=DIR or a bundled name")
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), help="one picture of each")
    parser.add_argument("--crop", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pool = aerial_rgb_images(args.split)
    images = [next(p for p in pool if p.parent.name == name) for name in args.classes]
    pairs = pairs_at(images, args.scale, args.crop)
    methods = {"bicubic": None, **{spec.partition("=")[0]: spec for spec in args.model}}
    columns: list[list[np.ndarray]] = []
    for name, spec in methods.items():
        if spec is None:
            outs = [bicubic_upsample(p.lr, args.scale) for p in pairs]
        else:
            run = upscaler_method(load(spec.partition("=")[2] or name), scale=args.scale, seed=args.seed)
            outs = [np.asarray(run(p.lr)) for p in pairs]
        columns.append(outs)
    columns.append([p.hr for p in pairs])
    rows = [np.concatenate([col[i] for col in columns], axis=-1) for i in range(len(pairs))]
    side = min(r.shape[-2] for r in rows)
    grid = np.concatenate([r[:, :side] for r in rows], axis=-2)
    pixels = (np.clip(grid, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(args.out)
    print(f"{args.out}: columns bicubic, {', '.join(list(methods)[1:])}, HR; rows {', '.join(args.classes)}")


if __name__ == "__main__":
    main()
