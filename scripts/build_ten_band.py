"""Compose the bundled ``s2-10band`` model (``satsr.models.ten_band.TenBandSR``) from its two stages'
folders: a GuidedSR (``scripts/train_guided.py``) and the RGBN x4 model (``s2-rgbn-x4-fast``).

Usage: python scripts/build_ten_band.py GUIDED_DIR RGBN_DIR OUT_DIR [--no-lr-consistency] [--no-octave-fit]
Writes OUT_DIR/config.json and OUT_DIR/model.safetensors (the stages' weights under ``guided.`` and
``rgbn.``); the model card is written by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from satsr.models.ten_band import TenBandSR, ten_band_config

SUMMARY = (
    "all ten S2 10 m + 20 m bands at 10, 5 or 2.5 m: the 20 m bands sharpened with the 10 m bands as guide "
    "(DSen2 protocol, real S2), their detail and high-pass injection's fitted per window one octave down, "
    "then x4 with s2-rgbn-x4-fast"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("guided", type=Path)
    parser.add_argument("rgbn", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-lr-consistency", action="store_true")
    parser.add_argument("--no-octave-fit", action="store_true", help="stage 1 is the network alone")
    args = parser.parse_args()
    config = ten_band_config(
        json.loads((args.guided / "config.json").read_text()),
        json.loads((args.rgbn / "config.json").read_text()),
        SUMMARY,
        lr_consistency=not args.no_lr_consistency,
        octave_fit=not args.no_octave_fit,
    )
    weights = {f"guided.{k}": v for k, v in load_file(args.guided / "model.safetensors").items()}
    weights |= {f"rgbn.{k}": v for k, v in load_file(args.rgbn / "model.safetensors").items()}
    model = TenBandSR(**{k: v for k, v in config.items() if k not in ("architecture", "bands", "summary")})
    model.load_state_dict(weights)  # checks that every weight has its place
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, args.out / "model.safetensors")
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
