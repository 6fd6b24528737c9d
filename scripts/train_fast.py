"""Interim trainer for s2-rgbn-x4-fast (plain PyTorch loop; LightningCLI training is still to come).

Usage: python scripts/train_fast.py OUT_DIR --minutes 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from satsr.data.pairs import WaldPatches
from satsr.data.sources import s2_rgbn_scenes
from satsr.io.bands import S2_RGBN
from satsr.models.fast import ResidualSR


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr-patch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    train = s2_rgbn_scenes("train")
    pixels = np.concatenate([s.pixels.reshape(4, -1) for s in train], axis=1)
    config = {
        "in_channels": 4, "scale": 4, "channels": args.channels, "num_blocks": args.blocks,
        "band_mean": pixels.mean(1).round(5).tolist(), "band_std": pixels.std(1).round(5).tolist(),
    }  # fmt: skip
    model = ResidualSR(**config).to(memory_format=torch.channels_last)
    data = DataLoader(
        WaldPatches(train, 4, args.lr_patch, length=10**7), batch_size=args.batch, num_workers=1
    )
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    start, step, log = time.time(), 0, []
    for lr, hr in data:
        sr = model(lr.to(memory_format=torch.channels_last))
        loss = (sr - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log.append({"step": step, "minutes": (time.time() - start) / 60, "l1": float(loss)})
            print(log[-1], flush=True)
        if time.time() - start > args.minutes * 60:
            break
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out / "model.safetensors")
    meta = {
        "steps": step,
        "batch": args.batch,
        "lr_patch": args.lr_patch,
        "minutes": (time.time() - start) / 60,
    }
    (args.out / "config.json").write_text(
        json.dumps({"architecture": "ResidualSR", "bands": list(S2_RGBN), **config}, indent=2)
    )
    (args.out / "train_log.json").write_text(json.dumps({"meta": meta, "log": log}, indent=2))


if __name__ == "__main__":
    main()
