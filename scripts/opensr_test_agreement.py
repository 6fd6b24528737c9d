"""Agreement of satsr's opensr-test measures with the real ``opensr-test`` package, per measure.

On the 58 held-apart place pairs (``place_pairs("test")``: B02 B03 B04 B08, reflectance, x4) and three
SR methods (bicubic, the bundled fast CNN, one sample of the bundled diffusion model at seed 0), every
(LR, SR, HR) triplet is scored twice: by ``satsr.evaluation.opensr_test.opensr_test_metrics`` exactly
as the harness calls it (border min(16, HR side // 4), registration on the mean of all bands) and by
``opensr_test.Metrics(Config(border_mask=border)).compute(lr, sr, hr)``, the package's default
config with the same border (16 px on every pair here, its default). The report gives per measure
the Pearson and Spearman correlation across triplets, the mean absolute difference, the mean of each
implementation, per method the two means and whether both rank the three methods alike.

A diagnostic satsr variant isolates the known difference of order: ``crop_first`` crops the border
before resampling (``opensr_test_metrics`` on pre-cropped images with border 0, as opensr-test's
``setup`` does). (satsr registered on the mean of the RGB bands until this check found that
opensr-test, through satalign's ``channel="mean"``, registers on the mean of all bands; it now does too.)

opensr-test needs torchvision, which does not import beside satsr's torch, so it lives in its own
virtual environment; this script calls that venv's python on itself (``--worker``), a part that
imports only numpy, torch and opensr_test. Nothing is downloaded. Usage, from the repo root::

    python3 -m venv /work/opensr_venv
    /work/opensr_venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/opensr_venv/bin/pip install opensr-test
    OMP_NUM_THREADS=1 .venv/bin/python scripts/opensr_test_agreement.py \\
        --opensr-python /work/opensr_venv/bin/python \\
        --npz /work/scratch/opensr_pairs.npz --out /work/scratch/opensr_agreement.json

``--reuse`` skips the SR runs and satsr scoring when ``--npz`` already exists.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

#: Measures in report order (satsr keys); opensr-test names the correctness ones differently.
MEASURES = ("reflectance", "spectral", "spatial", "synthesis", "improvement", "omission", "hallucination")
OPENSR_KEYS = {"improvement": "im_metric", "omission": "om_metric", "hallucination": "ha_metric"}
METHODS = ("bicubic", "cnn", "diffusion")
#: satsr variants kept in the npz: the harness call, then the diagnostic of the module doc.
VARIANTS = ("satsr", "crop_first")


# --- satsr side (satsr's venv) -----------------------------------------------------------------


def _satsr_variants(lr: np.ndarray, sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, dict]:
    import torch

    from satsr.evaluation.opensr_test import opensr_test_metrics

    lr_t, sr_t, hr_t = (torch.from_numpy(x)[None] for x in (lr, sr, hr))
    results = {"satsr": opensr_test_metrics(lr_t, sr_t, hr_t, 4.0, border)}
    b_lr = border // 4  # opensr-test: border_mask // scale_factor LR pixels
    lr_c = lr_t[..., b_lr:-b_lr, b_lr:-b_lr]
    sr_c, hr_c = (x[..., border:-border, border:-border] for x in (sr_t, hr_t))
    results["crop_first"] = opensr_test_metrics(lr_c, sr_c, hr_c, 4.0, 0)
    return results


def export(npz: Path) -> None:
    """Run the three SR methods on every test pair, score them with satsr and save all to ``npz``."""
    import satsr
    from satsr.evaluation.harness import _border, bicubic_upsample
    from satsr.evaluation.places import place_pairs

    pairs = place_pairs("test")
    cnn, ldm = satsr.load("s2-rgbn-x4-fast"), satsr.load("s2-rgbn-x4-ldm")
    methods = {
        "bicubic": lambda lr: bicubic_upsample(lr, 4.0),
        "cnn": lambda lr: cnn(lr),
        "diffusion": lambda lr: ldm(lr, seeds=[0]),
    }
    arrays: dict[str, np.ndarray] = {}
    names, kinds, method_names, borders = [], [], [], []
    scores: dict[str, list[float]] = {f"{v}_{m}": [] for v in VARIANTS for m in MEASURES}
    for pair in pairs:
        if pair.bands != ("B02", "B03", "B04", "B08"):
            raise ValueError(f"{pair.name}: bands {pair.bands}, expected B02 B03 B04 B08")
        border = _border(pair)
        for method, run in methods.items():
            sr = np.asarray(run(pair.lr.copy()), dtype=np.float32)
            if sr.shape != pair.hr.shape or not np.isfinite(sr).all():
                raise ValueError(f"{method} gave {sr.shape} (or non-finite values) for {pair.name}")
            k = len(names)
            arrays |= {f"lr_{k}": pair.lr, f"sr_{k}": sr, f"hr_{k}": pair.hr}
            names.append(pair.name)
            kinds.append(pair.kind)
            method_names.append(method)
            borders.append(border)
            for variant, values in _satsr_variants(pair.lr, sr, pair.hr, border).items():
                for measure in MEASURES:
                    scores[f"{variant}_{measure}"].append(values[measure])
        print(f"{pair.name}: done", file=sys.stderr)
    npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        npz,
        name=np.array(names),
        kind=np.array(kinds),
        method=np.array(method_names),
        border=np.array(borders),
        **{key: np.array(values) for key, values in scores.items()},
        **arrays,
    )


# --- opensr-test side (its own venv; numpy, torch and opensr_test only) -------------------------------


def worker(npz: Path, out: Path) -> None:
    """Score every triplet of ``npz`` with opensr-test's default ``Metrics`` and write JSON to ``out``."""
    import opensr_test
    import torch

    data = np.load(npz)
    rows, caught_all = [], []
    for k in range(len(data["name"])):
        lr, sr, hr = (torch.from_numpy(data[f"{x}_{k}"]) for x in ("lr", "sr", "hr"))  # (C, H, W) float32
        config = opensr_test.Config(border_mask=int(data["border"][k]))  # the default 16 on these pairs
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = opensr_test.Metrics(params=config).compute(lr=lr, sr=sr, hr=hr)
        caught_all += [f"{w.category.__name__}: {w.message}" for w in caught]
        rows.append({measure: float(values[OPENSR_KEYS.get(measure, measure)]) for measure in MEASURES})
    info = {
        "opensr_test": opensr_test.__version__,
        "torch": torch.__version__,
        "warnings": dict(Counter(caught_all)),
    }
    out.write_text(json.dumps({"info": info, "rows": rows}))


# --- comparison (satsr's venv) -------------------------------------------------------------------


def _agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    from scipy import stats

    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    constant = a.std() == 0 or b.std() == 0
    return {
        "n": int(both.sum()),
        "pearson": math.nan if constant else float(stats.pearsonr(a, b).statistic),
        "spearman": math.nan if constant else float(stats.spearmanr(a, b).statistic),
        "mad": float(np.abs(a - b).mean()),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
    }


def _ranking(means: dict[str, float]) -> str:
    return " < ".join(sorted(means, key=lambda m: means[m]))


def compare(npz: Path, opensr: dict) -> dict:
    data = np.load(npz)
    methods = data["method"]
    ref = {m: np.array([row[m] for row in opensr["rows"]], dtype=np.float64) for m in MEASURES}
    report: dict = {"info": opensr["info"], "n_triplets": len(methods), "measures": {}}
    for measure in MEASURES:
        entry: dict = {"opensr_nan": int(np.isnan(ref[measure]).sum())}
        for variant in VARIANTS:
            ours = data[f"{variant}_{measure}"].astype(np.float64)
            per_method = {
                m: (float(np.nanmean(ours[methods == m])), float(np.nanmean(ref[measure][methods == m])))
                for m in METHODS
            }
            rank_a = _ranking({m: v[0] for m, v in per_method.items()})
            rank_b = _ranking({m: v[1] for m, v in per_method.items()})
            entry[variant] = {
                **_agreement(ours, ref[measure]),
                "per_method": per_method,
                "rank_satsr": rank_a,
                "rank_opensr": rank_b,
                "same_rank": rank_a == rank_b,
            }
        report["measures"][measure] = entry
    return report


def _print(report: dict) -> None:
    info = report["info"]
    print(f"opensr-test {info['opensr_test']} (torch {info['torch']}), {report['n_triplets']} triplets")
    for variant in VARIANTS:
        print(f"\n## satsr variant: {variant}\n")
        print("| measure | n | Pearson | Spearman | mean abs diff | mean satsr | mean opensr-test |")
        print("|---|---|---|---|---|---|---|")
        for measure, entry in report["measures"].items():
            e = entry[variant]
            print(
                f"| {measure} | {e['n']} | {e['pearson']:.4f} | {e['spearman']:.4f} | {e['mad']:.3g} "
                f"| {e['mean_a']:.5g} | {e['mean_b']:.5g} |"
            )
        print("\n| measure | " + " | ".join(f"{m} satsr / opensr" for m in METHODS) + " | same order |")
        print("|---|" + "---|" * (len(METHODS) + 1))
        for measure, entry in report["measures"].items():
            e = entry[variant]
            cells = " | ".join(f"{a:.5g} / {b:.5g}" for a, b in e["per_method"].values())
            order = "yes" if e["same_rank"] else f"no ({e['rank_satsr']} vs {e['rank_opensr']})"
            print(f"| {measure} | {cells} | {order} |")
    nan = {m: e["opensr_nan"] for m, e in report["measures"].items() if e["opensr_nan"]}
    print(f"\nopensr-test NaN values (left out of the statistics): {nan or 'none'}")
    print(f"opensr-test warnings (all calls): {info['warnings'] or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--npz", type=Path, required=True, help="triplets and satsr scores (outside the repo)"
    )
    parser.add_argument("--opensr-python", type=Path, help="python of the venv that has opensr-test")
    parser.add_argument("--out", type=Path, help="JSON report (default: next to --npz)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing --npz")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # opensr-test part: JSON out
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.npz, args.worker)
        return
    if args.opensr_python is None:
        parser.error("--opensr-python is required")
    if not (args.reuse and args.npz.exists()):
        export(args.npz)
    opensr_json = args.npz.with_suffix(".opensr.json")
    subprocess.run(
        [str(args.opensr_python), __file__, "--npz", str(args.npz), "--worker", str(opensr_json)], check=True
    )
    report = compare(args.npz, json.loads(opensr_json.read_text()))
    out = args.out or args.npz.with_suffix(".report.json")
    out.write_text(json.dumps(report, indent=1, default=lambda x: None))
    _print(report)


if __name__ == "__main__":
    main()
