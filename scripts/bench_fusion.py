"""Inference time of multi-revisit fusion against the number of revisits N (``make bench-fusion``), as a
ratio to the single-image time of the same model in the same run.

One window of simulated revisits of the held-apart scene (T33UUB), fused as ``satsr fuse`` runs it (the
model's own fusion settings: anchored, its sampler and steps, at most ``max_trajectories`` sampled), for
N = 1, 2, 4, 8, 16; then SatDiffMoE as published (DDIM 50 steps, L2 + LPIPS center every 5) at the same
N for comparison. Each time is the best of ``--repeats``. Printed, not asserted; run it on a quiet machine.

Usage: python scripts/bench_fusion.py [--model s2-rgbn-x4-fusion] [--lr-side 64] [--counts 1 2 4 8 16]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from ldm_report import best_of

from satsr.data.sources import s2_rgbn_scenes
from satsr.evaluation.revisits import simulated_revisit_pairs
from satsr.models.registry import load
from satsr.models.revisit_fusion import FusionConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="s2-rgbn-x4-fusion")
    parser.add_argument("--lr-side", type=int, default=64)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--satdiffmoe-counts", type=int, nargs="*", default=[2, 8])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--project-onto", default=None, help="override the model's FusionConfig.project_onto (e.g. revisits)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.model)
    pair = simulated_revisit_pairs(s2_rgbn_scenes("test"), 1, 4 * args.lr_side, max(args.counts))[0]
    assert pair.revisits is not None
    revisits, dts = np.ascontiguousarray(pair.revisits), list(pair.dt_days)
    side = 4 * args.lr_side
    config = model.fusion_config
    if args.project_onto:
        config = dataclasses.replace(config, project_onto=args.project_onto)
    print(f"{args.model}: one {args.lr_side} x {args.lr_side} LR window -> {side} x {side}, "
          f"{model.fusion_steps(config)} steps, at most {config.max_trajectories} trajectories, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")  # fmt: skip
    model.fuse(revisits[:2], dts[:2], seed=0)  # warm-up (allocations)
    single = best_of(lambda: model(revisits[0], seeds=[0]), args.repeats)
    print(f"single image: {single:.2f} s\n")
    print("| N | fusion s | x single | SatDiffMoE s | x single |\n|---|---:|---:|---:|---:|")
    satdiffmoe = FusionConfig(method="satdiffmoe")
    for n in args.counts:
        lrs, days = revisits[:n], dts[:n]
        fused = best_of(lambda: model.fuse(lrs, days, seed=0, config=config), args.repeats)  # noqa: B023
        row = f"| {n} | {fused:.2f} | {fused / single:.1f} |"
        if n in args.satdiffmoe_counts:
            slow = best_of(lambda: model.fuse(lrs, days, seed=0, config=satdiffmoe), 1)  # noqa: B023
            row += f" {slow:.1f} | {slow / single:.0f} |"
        else:
            row += " | |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
