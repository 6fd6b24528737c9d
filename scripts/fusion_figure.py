"""The fusion model card's pictures (``docs/figures/fusion_*.png``): what fusion does with a stack of real
revisits, one strip per place.

* eo-learn (Wald, target = the anchor's own date) with its cloudy date in the stack (N = 2): the anchor's
  LR, the cloudy date's LR, a plain mean of the aligned trajectories (no weights), fusion, the single image
  of the anchor, the target.
* Deimos (five real dates before a Deimos-2 image): the anchor's LR, the mean of 5 single images, SatDiffMoE
  as published, fusion with the settings before 2026-12-06 night, fusion, the single image of the anchor,
  the Deimos-2 image (on the S2 median's radiometry).

Usage: python scripts/fusion_figure.py [OUT_DIR]   (default docs/figures)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from eval_fusion_real import settings_before, single_image

from satsr.data.sources import EOLEARN_FILE, shared_data_dir
from satsr.evaluation.report import HR_LABEL, LR_LABEL, render_crops
from satsr.evaluation.revisits import deimos_pair, eolearn_wald_pair
from satsr.models.registry import load
from satsr.models.revisit_fusion import FusionConfig

SEED = 0


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/figures")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    model = load("s2-rgbn-x4-fusion")
    base = model.fusion_config
    plain = dataclasses.replace(base, weighting=dataclasses.replace(base.weighting, weigh=False))
    root = shared_data_dir()

    eolearn = eolearn_wald_pair(root / EOLEARN_FILE)
    assert eolearn.revisits is not None
    lrs, dts = np.ascontiguousarray(eolearn.revisits[:2]), list(eolearn.dt_days[:2])
    strip = {
        LR_LABEL: lrs[0],
        "LR of the cloudy date in the stack": lrs[1],
        "plain mean of the 2 (no weights)": model.fuse(lrs, dts, SEED, plain),
        "fusion of the 2 (this model)": model.fuse(lrs, dts, SEED, base),
        "single image of the anchor": single_image(model, lrs[0], SEED),
        HR_LABEL: eolearn.hr,
    }
    render_crops(strip).save(out / "fusion_eolearn_wrong_date.png")

    deimos = deimos_pair(sorted((root / "pairs/deimos").glob("data_eopatch-*.npz"))[0])
    assert deimos.revisits is not None
    lrs, dts = np.ascontiguousarray(deimos.revisits), list(deimos.dt_days)
    singles = [single_image(model, x, SEED + 7 * k) for k, x in enumerate(lrs)]
    before = settings_before(base)
    strip = {
        LR_LABEL: lrs[0],
        "mean of 5 single images": np.mean(singles, axis=0),
        "SatDiffMoE as published, 5 dates": model.fuse(lrs, dts, SEED, FusionConfig(method="satdiffmoe")),
        "fusion of 5, settings before 2026-12-06 night": model.fuse(lrs, dts, SEED, before),
        "fusion of 5 dates (this model)": model.fuse(lrs, dts, SEED, base),
        "single image of the anchor": singles[0],
        HR_LABEL: deimos.hr,
    }
    render_crops(strip).save(out / "fusion_deimos.png")


if __name__ == "__main__":
    main()
