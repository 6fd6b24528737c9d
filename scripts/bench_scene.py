"""Whole-scene job measurements: an uninterrupted run, a run killed half-way and resumed, and a run on
a local Dask cluster, each as a separate ``satsr upscale`` process (time, peak RAM, peak temporary
disk, hash of the pixels).

Usage: python scripts/bench_scene.py OUT_DIR [--side 10980] [--model s2-rgbn-x4-fast] [--workers 2]
                                     [--only-whole]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio
from bench_upscale import write_mirrored_scene


def pixel_hash(path: Path) -> str:
    """sha256 of the pixel values (block by block), independent of the file's layout."""
    digest = hashlib.sha256()
    with rasterio.open(path) as src:
        for _, window in src.block_windows(1):
            digest.update(np.ascontiguousarray(src.read(window=window)).tobytes())
    return digest.hexdigest()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def run(args: list[str], out_dir: Path, kill_when: float | None = None) -> dict[str, float | bool | int]:
    """Run ``satsr upscale ARGS`` as a child; peak RSS from rusage, peak disk of ``out_dir`` by polling.

    ``kill_when``: SIGKILL the child once its recorded progress passes this fraction of tile rows.
    """
    before = folder_bytes(out_dir)
    peak_disk = 0
    start = time.monotonic()
    child = subprocess.Popen([str(Path(sys.executable).with_name("satsr")), "upscale", *args])
    stop = threading.Event()
    killed = False
    peak_rss = 0

    def poll() -> None:
        nonlocal peak_disk, killed, peak_rss
        process = psutil.Process(child.pid)
        while not stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                peak_rss = max(peak_rss, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            try:
                peak_disk = max(peak_disk, folder_bytes(out_dir) - before)
                if kill_when is not None and not killed:
                    states = list(out_dir.glob(".*.state.npz"))
                    if states and _progress(states[0]) >= kill_when:
                        child.send_signal(signal.SIGKILL)
                        killed = True
            except (FileNotFoundError, OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)

    thread = threading.Thread(target=poll)
    thread.start()
    code = child.wait()
    stop.set()
    thread.join()
    return {"exit": code, "wall_s": time.monotonic() - start, "peak_rss_mib": peak_rss / 2**20,
            "peak_tmp_disk_mib": peak_disk / 2**20, "killed": killed}  # fmt: skip


def _progress(state: Path) -> float:
    with np.load(state) as data:
        return float(data["next_row"]) / float(data["rows"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--side", type=int, default=10980)
    parser.add_argument("--model", default="s2-rgbn-x4-fast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the outputs (else removed once hashed)")
    parser.add_argument("--only-whole", action="store_true", help="only the uninterrupted run")
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    scene = a.out / f"scene_{a.side}.tif"
    if not scene.exists():
        write_mirrored_scene(scene, a.side)
    common = ["--model", a.model, "--overwrite"]
    results, hashes = {}, {}

    def finished(name: str) -> None:
        """Hash an output as soon as it exists, and remove it (each is ~20 GB at full size)."""
        path = a.out / f"{name}.tif"
        hashes[name] = pixel_hash(path)
        results[name]["output_mib"] = path.stat().st_size / 2**20
        if not a.keep:
            path.unlink()

    results["whole"] = run([str(scene), str(a.out / "whole.tif"), *common], a.out)
    finished("whole")
    if not a.only_whole:
        results["killed"] = run([str(scene), str(a.out / "resumed.tif"), *common], a.out, kill_when=0.5)
        results["resumed"] = run([str(scene), str(a.out / "resumed.tif"), *common], a.out)
        finished("resumed")
        results["dask"] = run(
            [str(scene), str(a.out / "dask.tif"), *common, "--workers", str(a.workers)], a.out
        )
        finished("dask")
    for name, r in results.items():
        print(
            f"{name:8s} "
            + " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
        )
    for name, h in hashes.items():
        print(f"pixels {name:8s} sha256 {h}")
    for name in ("resumed", "dask"):
        if name in hashes:
            print(f"{name} == whole: {hashes[name] == hashes['whole']}")
    print(
        f"(peak RSS: sum over the satsr process and its children, sampled every 0.5 s; {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
