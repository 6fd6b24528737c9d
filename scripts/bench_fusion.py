"""Inference time of multi-revisit fusion against the number of revisits N (``make bench-fusion``).

One window of simulated revisits of the held-apart scene (T33UUB), fused with DDIM 50 steps and the
trajectory fusion every 5 steps, as ``satsr fuse`` runs it; timed for N = 1, 2, 4, 8, 16, with the
L2 + LPIPS center (alpha = 0.2, the default) and with the L2 center alone (alpha = 0). Printed, not
asserted; run it on a quiet machine.

Usage: python scripts/bench_fusion.py [--model s2-rgbn-x4-fusion] [--lr-side 64] [--counts 1 2 4 8 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from satsr.data.sources import s2_rgbn_scenes
from satsr.evaluation.revisits import simulated_revisit_pairs
from satsr.models.ldm import LatentDiffusionSR
from satsr.models.registry import load
from satsr.models.revisit_fusion import FusionConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="s2-rgbn-x4-fusion")
    parser.add_argument("--lr-side", type=int, default=64)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    network = load(args.model).network
    assert isinstance(network, LatentDiffusionSR)
    pair = simulated_revisit_pairs(s2_rgbn_scenes("test"), 1, 4 * args.lr_side, max(args.counts))[0]
    assert pair.revisits is not None
    revisits = torch.from_numpy(np.ascontiguousarray(pair.revisits))
    side = 4 * args.lr_side
    print(f"{args.model}: one {args.lr_side} x {args.lr_side} LR window -> {side} x {side}, "
          f"DDIM {args.steps} steps, {torch.get_num_threads()} threads")  # fmt: skip
    with torch.no_grad():
        network.fuse(revisits[:2], list(pair.dt_days[:2]), seed=0, steps=2)  # warm-up (LPIPS, allocations)
    print("| N | s (L2 + LPIPS center) | s (L2 center) |")
    print("|---|---|---|")
    for n in args.counts:
        times = []
        for alpha in (0.2, 0.0):
            start = time.perf_counter()
            with torch.no_grad():
                network.fuse(
                    revisits[:n], list(pair.dt_days[:n]), seed=0, config=FusionConfig(args.steps, alpha=alpha)
                )
            times.append(time.perf_counter() - start)
        print(f"| {n} | {times[0]:.1f} | {times[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
