"""Whole-scene cost of the diffusion model against the fast CNN, in one run: ``satsr upscale`` of the same
scene with each model's defaults, each in its own process, timed from start to finish.

Usage: python scripts/bench_ldm_scene.py [--scene PATH] [--side N] [--repeats 2] [--models A B ...]

By default the scene is T33UUB (600 x 600 x 4, uint16, never trained on); ``--side N`` times a
mirrored N x N copy of it instead (the same pixels repeated, for larger scenes). Prints wall seconds
per run, the ratio to the first model, and what that ratio gives for a full 10980 x 10980 tile.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from satsr.data.sources import shared_data_dir

T33UUB = "s2/dsen2_l1c/S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif"
FULL_TILE = 10980


def mirrored(src_path: Path, dst_path: Path, side: int) -> Path:
    with rasterio.open(src_path) as src:
        dn, profile, descriptions = src.read(), src.profile, src.descriptions
    _, h, w = dn.shape
    rows = np.arange(side) % (2 * h)
    cols = np.arange(side) % (2 * w)
    rows, cols = np.where(rows < h, rows, 2 * h - 1 - rows), np.where(cols < w, cols, 2 * w - 1 - cols)
    profile |= {"width": side, "height": side, "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(dn[:, rows][:, :, cols], window=Window(0, 0, side, side))
        for band, description in enumerate(descriptions, start=1):
            if description:
                dst.set_band_description(band, description)
    return dst_path


def run(scene: Path, model: str, out: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "satsr.cli",
        "upscale",
        str(scene),
        str(out),
        "--model",
        model,
        "--overwrite",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scene", type=Path, default=None)
    parser.add_argument("--side", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["s2-rgbn-x4-fast", "s2-rgbn-x4-ldm"])
    args = parser.parse_args()
    scene = args.scene or shared_data_dir() / T33UUB
    with tempfile.TemporaryDirectory() as tmp:
        if args.side:
            scene = mirrored(scene, Path(tmp) / "scene.tif", args.side)
        with rasterio.open(scene) as src:
            height, width = src.height, src.width
        times: dict[str, list[float]] = {m: [] for m in args.models}
        for _ in range(args.repeats):  # interleaved, so both models see the same machine load
            for model in args.models:
                times[model].append(run(scene, model, Path(tmp) / "out.tif"))
    best = {m: min(t) for m, t in times.items()}
    base = best[args.models[0]]
    tile_factor = FULL_TILE**2 / (height * width)
    report = {
        "scene": f"{height} x {width}", "seconds": times,
        "ratio_to_first": {m: best[m] / base for m in args.models},
        "full_tile_hours_by_scaling": {m: best[m] * tile_factor / 3600 for m in args.models},
    }  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
