"""Measure a trained fast model against bicubic on held-out real S2 pixels (Wald's protocol, x4).

Usage: python scripts/eval_fast.py MODEL_DIR
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from satsr.data.degradation import wald_degrade
from satsr.data.sources import s2_rgbn_scenes
from satsr.evaluation import lpips, psnr, ssim
from satsr.io.bands import S2_DISPLAY_WHITE
from satsr.models.registry import load


def to_lpips_rgb(x: torch.Tensor) -> torch.Tensor:
    """Reflectance mapped to [-1, 1] for LPIPS: 0 -> -1, S2_DISPLAY_WHITE -> +1 (clipped)."""
    return (x[:, [2, 1, 0]] / S2_DISPLAY_WHITE).clamp(0, 1) * 2 - 1


def main() -> None:
    model = load(sys.argv[1]).network
    rows = {}
    for split in ("val", "test"):
        for scene in s2_rgbn_scenes(split):
            _, h, w = scene.pixels.shape
            hr = torch.from_numpy(scene.pixels[:, : h // 4 * 4, : w // 4 * 4].copy())[None]
            lr = wald_degrade(hr, 4, scene.bands)
            with torch.inference_mode():
                outs = {
                    "bicubic": F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False),
                    "s2-rgbn-x4-fast": model(lr),
                }
            for name, sr in outs.items():
                rows.setdefault(scene.name, {})[name] = {
                    "psnr": float(psnr(sr, hr)[0]),
                    "ssim": float(ssim(sr, hr)[0]),
                    "lpips": float(lpips(to_lpips_rgb(sr), to_lpips_rgb(hr))[0]),
                }
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
