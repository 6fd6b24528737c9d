"""Score the sharpening of Sentinel-2's 20 m bands by DSen2's protocol on places never trained on.

Usage: python scripts/eval_sharpening.py OUT_DIR [--model runs/guided ...] [--ten-band s2-10band]
                                         [--split test]

Every band is degraded one octave by Wald's protocol (10 m -> 20 m, 20 m -> 40 m); bicubic upsampling,
the high-pass-injection baseline (``satsr.models.guided``), each GuidedSR folder and each ten-band model
(at scale 1) sharpen the 40 m bands with the 20 m guide, and the real 20 m bands are the truth
(``satsr.evaluation.sharpening.sharpening_report``: report.md, metrics.json, crops.png of T33UUB).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from satsr.data.sources import s2_band_scenes
from satsr.evaluation.sharpening import Sharpen, baselines, sharpening_report, ten_band_method
from satsr.models.guided import GuidedSR
from satsr.models.registry import load


def load_guided(folder: Path) -> GuidedSR:
    config = json.loads((folder / "config.json").read_text())
    model = GuidedSR(**{k: v for k, v in config.items() if k not in ("architecture", "summary")})
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", nargs="*", default=[], type=Path, help="GuidedSR folders")
    parser.add_argument("--ten-band", nargs="*", default=[], help="ten-band models (names or folders)")
    parser.add_argument("--split", default="test", choices=["test", "val"])
    args = parser.parse_args()
    methods: dict[str, Sharpen] = baselines()
    for folder in args.model:
        methods[folder.name] = load_guided(folder)
    for name in args.ten_band:
        methods[f"{Path(name).name} x1"] = ten_band_method(load(name))
    scenes = sorted(s2_band_scenes(args.split), key=lambda s: s.source != "dsen2")  # T33UUB first: the crops
    sharpening_report(methods, scenes, args.out, f"Sharpening the 20 m bands, {args.split} places")
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
