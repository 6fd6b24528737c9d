"""Average two exported models of one architecture, weight by weight (a "model soup", Wortsman et al.
2022): ``(1 - t) * A + t * B``. Used to build the bundled ``rgb-continuous`` from its previous weights and
their end-to-end fine-tune (``t`` = 0.5, chosen on the validation split; the model card).

A model without the prior's detail path (``prior_detail``) averages with one that has it as if its path
were zero, which is what its output is.

Usage: python scripts/average_weights.py A_DIR B_DIR T OUT_DIR   (OUT_DIR gets B's config.json)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from satsr.training.continuous_base import GROWN_PARAMETERS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("t", type=float, help="weight of B, in [0, 1]")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if not 0 <= args.t <= 1:
        raise SystemExit(f"t must be in [0, 1], got {args.t}")
    config_a, config_b = (json.loads((d / "config.json").read_text()) for d in (args.a, args.b))
    drop = ("summary", "lr_consistency", "prior_detail")  # a path grown at zero: A's weights are zero
    if {k: v for k, v in config_a.items() if k not in drop} != {
        k: v for k, v in config_b.items() if k not in drop
    }:
        raise SystemExit("the two models differ in architecture or band statistics: nothing to average")
    a, b = load_file(args.a / "model.safetensors"), load_file(args.b / "model.safetensors")
    for key in GROWN_PARAMETERS:  # a model without a grown path is one whose path is zero
        if key in b and key not in a and config_b.get("prior_detail"):
            a[key] = torch.zeros_like(b[key])
    if a.keys() != b.keys():
        raise SystemExit("the two models hold different weights")
    mixed = {k: ((1 - args.t) * a[k].float() + args.t * b[k].float()).to(a[k].dtype).contiguous() for k in a}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(mixed, args.out / "model.safetensors")
    if args.out.resolve() != args.b.resolve():
        shutil.copyfile(args.b / "config.json", args.out / "config.json")


if __name__ == "__main__":
    main()
