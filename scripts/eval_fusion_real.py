"""Multi-revisit fusion on real revisits (issue 16): LPIPS and PSNR against N, ablations and baselines.

Two real places, neither ever trained on:
* ``deimos``: the Deimos sample (Lithuania 2020), five real S2 dates 5-50 days before a Deimos-2 image at
  2.5 m (put on the S2 median's radiometry per band, ``satsr.evaluation.revisits.deimos_pair``);
* ``eolearn``: eo-learn's five real S2 dates of one place (Slovenia) by Wald's protocol, the last date's
  10 m image as the target (``eolearn_wald_pair``). Two of its dates are cloudy or hazy (blue 4x and 2x
  the target's): the stack with a wrong date that fusion must not follow.

Revisits are ordered nearest the target first; N takes the first N. Every diffusion figure is the mean
over ``--seeds`` seeds; single-image SR of a date draws as fusion's anchor trajectory does (as ``satsr
upscale --seed`` draws its sample 0), so fusion and the single image are compared on the same noise.
"single" is the single-image SR of the anchor (the nearest date, i.e. the latest before the target), the
result a user gets without fusion.

Usage: python scripts/eval_fusion_real.py [--model s2-rgbn-x4-fusion] [--old DIR] [--seeds 3]
       [--eolearn-targets 4 2 3]
Prints two markdown tables per place (LPIPS, then PSNR, against N; the outputs as they are, then
histogram-matched per band to the target) and the mean time of each call.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from satsr.data.sources import EOLEARN_FILE, shared_data_dir
from satsr.diffusion.noise import mix_seed
from satsr.evaluation.alignment import histogram_match
from satsr.evaluation.datasets import EvalPair
from satsr.evaluation.harness import bicubic_upsample, image_lpips
from satsr.evaluation.metrics import psnr
from satsr.evaluation.revisits import best_single_oracle, deimos_pair, eolearn_wald_pair
from satsr.models.registry import Upscaler, load
from satsr.models.revisit_fusion import FusionConfig

#: A method: (revisits (n, C, h, w), dt_days, seed) -> SR (C, H, W).
Run = Callable[[np.ndarray, list[float], int], np.ndarray]


def places(eolearn_targets: tuple[int, ...] = (4,)) -> dict[str, EvalPair]:
    """The Deimos place, and eo-learn's place once per target date (``eolearn`` for the last date)."""
    root = shared_data_dir()
    out = {"deimos": deimos_pair(sorted((root / "pairs/deimos").glob("data_eopatch-*.npz"))[0])}
    for target in eolearn_targets:
        name = "eolearn" if target == 4 else f"eolearn (date {target} the target)"
        out[name] = eolearn_wald_pair(root / EOLEARN_FILE, target=target)
    return out


def single_image(model: Upscaler, lr: np.ndarray, seed: int) -> np.ndarray:
    """``lr`` upscaled as fusion's anchor trajectory draws it (``satsr upscale --seed``'s sample 0)."""
    return np.asarray(model(lr, seeds=[mix_seed(seed, 0)], origins=[(0, 0)]))


def settings_before(config: FusionConfig) -> FusionConfig:
    """The fusion settings before 2026-12-06, night: the pull on every estimate, no agreement factor, the
    projection onto the anchor alone."""
    return dataclasses.replace(config, pull_mean=True, pull_agreement=None, project_onto="anchor")


def methods(model: Upscaler, fast: Upscaler, old: Upscaler | None) -> dict[str, tuple[Run, bool]]:
    """name -> (run, stochastic)."""
    base = model.fusion_config

    def fusion(config: FusionConfig) -> Run:
        return lambda lrs, dts, seed: model.fuse(lrs, dts, seed, config)

    single = functools.partial(single_image, model)

    def weighting(**changes: bool) -> FusionConfig:
        return dataclasses.replace(base, weighting=dataclasses.replace(base.weighting, **changes))

    out: dict[str, tuple[Run, bool]] = {
        "fusion (default)": (fusion(base), True),
        "- no registration": (fusion(weighting(register=False)), True),
        "- no harmonisation": (fusion(weighting(harmonise=False)), True),
        "- no weights (plain mean)": (fusion(weighting(weigh=False)), True),
        "- independent noise": (fusion(dataclasses.replace(base, shared_noise=False)), True),
        "- every revisit sampled": (fusion(dataclasses.replace(base, max_trajectories=64)), True),
        "- pull on the first estimate too": (fusion(dataclasses.replace(base, pull_mean=True)), True),
        "- no agreement in the pull": (fusion(dataclasses.replace(base, pull_agreement=None)), True),
        "- projected onto the anchor only": (fusion(dataclasses.replace(base, project_onto="anchor")), True),
        "- all three (the default before 2026-12-06, night)": (
            fusion(settings_before(base)),
            True,
        ),
        "- projected onto the weighted composite LR": (
            fusion(dataclasses.replace(base, project_onto="composite")),
            True,
        ),
        "- 2 steps": (fusion(base.with_steps(2)), True),
        "- 8 steps": (fusion(base.with_steps(8)), True),
        "SatDiffMoE as published, this LDM": (fusion(FusionConfig(method="satdiffmoe")), True),
        "single (nearest date)": (lambda lrs, dts, seed: single(lrs[0], seed), True),
        "mean of N singles": (
            lambda lrs, dts, seed: np.mean([single(x, seed + 7 * k) for k, x in enumerate(lrs)], 0),
            True,
        ),
        "single of median LR": (
            lambda lrs, dts, seed: single(np.median(lrs, 0).astype(np.float32), seed),
            True,
        ),
        "fast CNN (nearest date)": (lambda lrs, dts, seed: np.asarray(fast(lrs[0])), False),
        "bicubic of median LR": (
            lambda lrs, dts, seed: bicubic_upsample(np.median(lrs, 0).astype(np.float32), 4),
            False,
        ),
    }
    if old is not None:
        satdiffmoe = FusionConfig(method="satdiffmoe")
        out["previous fusion model (SatDiffMoE, dt)"] = (
            lambda lrs, dts, seed: old.fuse(lrs, dts, seed, satdiffmoe),
            True,
        )
    return out


def scores(sr: np.ndarray, pair: EvalPair) -> tuple[float, float, float, float]:
    """LPIPS and PSNR of ``sr`` as it is, then after per-band histogram matching to the target (which
    takes radiometry out of the score: the Deimos target has the S2 median's per-band mean and std,
    which favours methods that output the median's radiometry)."""
    b = torch.from_numpy(pair.hr)[None]
    matched = histogram_match(sr.astype(np.float64), pair.hr.astype(np.float64)).astype(np.float32)
    out = []
    for image in (sr, matched):
        a = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
        out += [image_lpips(a, b, pair.bands), float(psnr(a, b)[0])]
    return out[0], out[1], out[2], out[3]


def oracle(pair: EvalPair, n: int, model: Upscaler, seed: int) -> tuple[float, float, float, float]:
    """Best single date by LPIPS against the target (it looks at the target: an upper bound)."""
    pick = best_single_oracle(lambda lr: single_image(model, lr, seed), n)
    return scores(pick.run(pair), pair)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="s2-rgbn-x4-fusion")
    parser.add_argument("--old", type=Path, default=None, help="the previous fusion model's folder")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--eolearn-targets", type=int, nargs="+", default=[4], help="eo-learn dates to take as the target"
    )
    parser.add_argument(
        "--only", nargs="+", default=None, help="run the methods whose names contain one of these"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, fast = load(args.model), load("s2-rgbn-x4-fast")
    old = load(args.old) if args.old else None
    runs = methods(model, fast, old)
    if args.only:
        runs = {k: v for k, v in runs.items() if any(part in k for part in args.only)}
    times: dict[str, list[float]] = {}
    for name, pair in places(tuple(args.eolearn_targets)).items():
        assert pair.revisits is not None
        counts = sorted({1, 2, 4, len(pair.revisits)})
        table: dict[str, dict[int, tuple[float, ...]]] = {}
        for method, (run, stochastic) in runs.items():
            for n in counts:
                lrs, dts = np.ascontiguousarray(pair.revisits[:n]), list(pair.dt_days[:n])
                got = []
                for seed in range(args.seeds if stochastic else 1):
                    start = time.perf_counter()
                    sr = run(lrs, dts, seed)
                    times.setdefault(f"{method}|{n}", []).append(time.perf_counter() - start)
                    got.append(scores(sr, pair))
                table.setdefault(method, {})[n] = tuple(np.mean(got, axis=0).tolist())
        for n in counts if args.only is None else ():
            got = [oracle(pair, n, model, seed) for seed in range(args.seeds)]
            table.setdefault("best single date (oracle)", {})[n] = tuple(np.mean(got, axis=0).tolist())
        days = ", ".join(f"{d:g}" for d in pair.dt_days)
        print(f"\n### {name}: {len(pair.revisits)} real dates, dt_days {days} (nearest first)\n")
        header = " | ".join(f"N={n}" for n in counts)
        for k, what in ((0, "as output"), (2, "histogram-matched to the target")):
            print(
                f"\n{what}\n\n| method | LPIPS {header} | PSNR {header} |\n|---|"
                + "---:|" * (2 * len(counts))
            )
            for method, row in table.items():
                lp = " | ".join(f"{row[n][k]:.3f}" for n in counts)
                ps = " | ".join(f"{row[n][k + 1]:.2f}" for n in counts)
                print(f"| {method} | {lp} | {ps} |")
    print("\nmean seconds per call (both places, every N): ")
    for key, values in times.items():
        print(f"  {key}: {np.mean(values):.2f}")


if __name__ == "__main__":
    main()
