"""Why real revisits hurt fusion (issue 16, first measurements): how each real revisit differs from the one
nearest the target date.

Usage: python scripts/revisit_diagnostics.py

For the Deimos sample (five S2 dates before a Deimos-2 2.5 m image) and eo-learn's five reference scenes:
the mean |reflectance difference| to the reference date, the per-band gain (mean ratio), the translation
found by phase correlation on the band mean (LR pixels), and, for Deimos, the LPIPS of the fast CNN's x4
output of each date against the Deimos-2 image (harness radiometry): one bad date is a bad input.
"""

from __future__ import annotations

import numpy as np
import torch

import satsr
from satsr.data.sources import EOLEARN_10M, EOLEARN_FILE, shared_data_dir
from satsr.evaluation.alignment import phase_correlation_shift
from satsr.evaluation.harness import image_lpips
from satsr.evaluation.revisits import deimos_pair


def describe(x: np.ndarray, reference: np.ndarray) -> str:
    gain = (x.mean((1, 2)) / reference.mean((1, 2))).round(2)
    shift = phase_correlation_shift(reference.mean(0), x.mean(0)).round(2)
    return f"mean |x - ref| {float(np.abs(x - reference).mean()):.4f}, band gains {gain}, shift {shift} px"


def main() -> None:
    root = shared_data_dir()
    pair = deimos_pair(sorted((root / "pairs/deimos").glob("data_eopatch-*.npz"))[0])
    assert pair.revisits is not None
    fast = satsr.load("s2-rgbn-x4-fast")
    print(f"Deimos sample {pair.name}: S2 dates (days before the Deimos-2 image), ref = the nearest")
    hr = torch.from_numpy(pair.hr)[None]
    for x, dt in zip(pair.revisits, pair.dt_days, strict=True):
        sr = torch.as_tensor(fast(x[None]))
        lpips = image_lpips(sr, hr, pair.bands)
        print(f"  dt {dt:5.0f} d: {describe(x, pair.revisits[0])}; fast CNN x4 LPIPS {lpips:.3f}")
    scenes = np.load(root / EOLEARN_FILE)  # (T, H, W, 13) reflectance
    rgbn = scenes[..., list(EOLEARN_10M)].transpose(0, 3, 1, 2).astype(np.float32)
    print(f"eo-learn reference scenes {scenes.shape}: ref = the last")
    for k, x in enumerate(rgbn):
        print(f"  scene {k}: {describe(x, rgbn[-1])}")


if __name__ == "__main__":
    main()
