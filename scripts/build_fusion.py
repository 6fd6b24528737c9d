"""Build the bundled ``s2-rgbn-x4-fusion`` from ``s2-rgbn-x4-ldm``: the same weights and sampling, plus the
fusion settings it runs ``satsr fuse`` with (``config.json``'s ``fusion`` entry, ``FusionConfig``).

Usage: python scripts/build_fusion.py [OUT_DIR]   (default: the bundled folder)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

from satsr.models.registry import BUNDLED_DIR
from satsr.models.revisit_fusion import FusionConfig

SUMMARY = (
    "multi-revisit fusion for S2 B02,B03,B04,B08 x4 on s2-rgbn-x4-ldm: revisits registered and harmonised "
    "onto the date nearest the target, weighted per pixel by time, correction and agreement, one shared "
    "noise, pulled together where they agree, projected onto every revisit's grid; falls back to that date "
    "alone where the others disagree"
)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_DIR / "s2-rgbn-x4-fusion"
    source = BUNDLED_DIR / "s2-rgbn-x4-ldm"
    config = json.loads((source / "config.json").read_text())
    fusion = dataclasses.asdict(FusionConfig())
    kept = (
        "method",
        "max_trajectories",
        "shared_noise",
        "pull_mean",
        "pull_agreement",
        "project_onto",
        "weighting",
    )
    fusion = {k: v for k, v in fusion.items() if k in kept}
    config |= {"fusion": fusion, "summary": SUMMARY}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model.safetensors", out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
