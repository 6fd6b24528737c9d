"""Score models on the held-apart places (or the validation places), per kind of place and on average.

Usage: python scripts/eval_places.py OUT_DIR --model s2-rgbn-x4-fast s2-rgbn-x4-ldm:samples=4 [--split val]

A model spec is ``NAME_OR_DIR[:key=value,...]`` with keys ``samples``, ``steps``, ``detail``,
``threshold`` (the structure gate's ``detail_threshold``), ``precision`` (float32 or bfloat16),
``sigma_min`` (in units of the model's ``sigma_data``; diffusion models), ``consistency`` (on/off) and
``label`` (the row name). Pairs come from
``satsr.evaluation.places.place_pairs`` (Wald's protocol x4; T33UUB in 128 px tiles, EuroSAT tiles and
BigEarthNet patches whole); the report has the per-kind tables of ``satsr.evaluation.kinds``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path

import torch

from satsr.data.sources import HELD_APART, shared_data_dir
from satsr.evaluation.harness import Method, evaluate, upscaler_method
from satsr.evaluation.places import place_pairs
from satsr.evaluation.revisits import deimos_pair
from satsr.models.registry import load, set_lr_consistency

#: Pairs shown as comparison crops: fields, water, bright roofs, a town, forest, a river, a T33UUB tile.
DEFAULT_CROPS = (
    "eurosat_AnnualCrop_6", "eurosat_SeaLake_1", "eurosat_Industrial_1", "eurosat_Residential_6",
    "eurosat_Forest_11", "eurosat_River_6", "dsen2_T33UUB_y256_x256",
)  # fmt: skip


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    name, _, options = spec.partition(":")
    pairs = [item.split("=", 1) for item in options.split(",") if item]
    return name, {key: value for key, value in pairs}


def method_for(spec: str, seed: int) -> tuple[str, Method]:
    name, options = parse_spec(spec)
    upscaler = load(name)
    if not upscaler.stochastic:
        return options.get("label", upscaler.name), upscaler_method(upscaler)
    samples, steps = int(options.get("samples", 1)), int(options.get("steps", 0)) or None
    variant = copy.deepcopy(upscaler)
    network = variant.network
    if "detail" in options:
        network.detail = float(options["detail"])
    if "threshold" in options:
        network.detail_threshold = float(options["threshold"])
    if "precision" in options:
        network.precision = options["precision"]
    if "sigma_min" in options:
        network.sigma_min = float(options["sigma_min"]) * network.precond.sigma_data
    if options.get("consistency", "on") == "off":
        set_lr_consistency(variant, False)
    detail, threshold = getattr(network, "detail", 1.0), getattr(network, "detail_threshold", 0.0)
    gate = f" gate {threshold:g}" if threshold else ""
    gate += ", bf16" if getattr(network, "precision", "") == "bfloat16" else ""
    label = options.get("label") or (
        f"{upscaler.name} ({steps or upscaler.default_steps} steps, detail {detail:g}{gate}, "
        + (f"mean of {samples})" if samples > 1 else "1 sample)")
    )
    return label, upscaler_method(variant, samples=samples, steps=steps, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fid", action="store_true")
    parser.add_argument("--crops", nargs="*", default=None, help="pair names shown as crops (test split)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--deimos",
        action="store_true",
        help="also score the S2 date nearest to the real Deimos-2 2.5 m image against it",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = place_pairs(args.split)
    methods = dict(method_for(spec, args.seed) for spec in args.model)
    crops = args.crops if args.crops is not None else (list(DEFAULT_CROPS) if args.split == "test" else 4)
    title = (
        f"S2 x4 (Wald), {'held-apart places: ' + HELD_APART if args.split == 'test' else 'validation places'}"
    )
    result = evaluate(methods, pairs, args.out, 4, fid=not args.no_fid, crops=crops, title=title)
    summary = {name: {k: result["results"][name][k] for k in ("psnr", "lpips", "hallucination")}
               for name in result["results"]}  # fmt: skip
    print(json.dumps(summary, indent=1))
    print(f"{args.out / 'report.md'} ({len(pairs)} pairs)")
    if args.deimos:
        # The real target: another sensor at 2.5 m, radiometry matched to the S2 median (deimos_pair);
        # the input is one real S2 acquisition, the one nearest in time. LPIPS is the telling figure here.
        pair = deimos_pair(sorted((shared_data_dir() / "pairs/deimos").glob("data_eopatch-*.npz"))[0])
        pair = dataclasses.replace(pair, lr=pair.revisits[0], revisits=None, dt_days=(), kind="Deimos-2")
        title = f"Nearest S2 date x4 against a real Deimos-2 2.5 m image ({pair.name})"
        real = evaluate(methods, [pair], args.out / "deimos", 4, fid=False, crops=1, title=title)
        print(json.dumps({name: {k: real["results"][name][k] for k in ("psnr", "lpips")}
                          for name in real["results"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
