"""Figures per kind of place: one scene hides what water, forest or a town do to a generative model.

``EvalPair.kind`` names the kind of place a pair shows (a land-cover class, or a scene). The harness
averages every per-image measure over the pairs of each kind (``by_kind``), and the report shows, per
kind, each method against bicubic: PSNR difference, LPIPS ratio, hallucination, LR-grid pattern, and
the worst kind.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Per-image measures averaged per kind (FID and time are set-level figures, not per image).
KIND_METRICS = ("psnr", "ssim", "lpips", "sam", "improvement", "omission", "hallucination", "grid")


def _nanmean(values: Sequence[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN stays NaN
        return float(np.nanmean(values)) if len(values) else math.nan


def by_kind(
    kinds: Sequence[str], per_image: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, dict[str, dict[str, float]]]:
    """``{kind: {method: {metric: mean over the pairs of that kind}}}``, kinds in first-seen order.

    ``kinds[i]`` is the kind of pair ``i``; ``per_image[method][i]`` its measures.
    """
    order = list(dict.fromkeys(kinds))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for kind in order:
        rows = [i for i, k in enumerate(kinds) if k == kind]
        table[kind] = {
            method: {
                "pairs": float(len(rows)),
                **{m: _nanmean([images[i].get(m, math.nan) for i in rows]) for m in KIND_METRICS},
            }
            for method, images in per_image.items()
        }
    return table


def _cell(value: float, digits: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def kind_tables(table: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str) -> list[str]:
    """Markdown lines: per kind and method, PSNR − baseline (dB), LPIPS / baseline's, hallucination, the
    LR-grid pattern; then each method's worst kind on PSNR and LPIPS (the "no kind made worse than
    bicubic" test)."""
    methods = [m for m in next(iter(table.values())) if m != baseline]
    header = "| kind (pairs) | " + " | ".join(methods) + " |"
    rule = "|---|" + "---:|" * len(methods)
    sections = [
        ("PSNR − bicubic (dB)", lambda v, b: v["psnr"] - b["psnr"], 2),
        ("LPIPS / bicubic's", lambda v, b: v["lpips"] / b["lpips"] if b["lpips"] > 0 else math.nan, 2),
        ("hallucination (bicubic in brackets)", lambda v, b: v["hallucination"], 3),
        ("LR-grid pattern (bicubic in brackets)", lambda v, b: v.get("grid", math.nan), 3),
    ]
    lines: list[str] = []
    for title, value, digits in sections:
        lines += [f"### {title}", "", header, rule]
        for kind, rows in table.items():
            base = rows[baseline]
            cells = [_cell(value(rows[m], base), digits) for m in methods]
            label = f"{kind} ({int(base['pairs'])})"
            if title.endswith("(bicubic in brackets)"):
                label += f" [{_cell(value(base, base), digits)}]"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Worst kind per method", ""]
    lines += ["| method | lowest PSNR − bicubic | highest LPIPS / bicubic's |", "|---|---:|---:|"]
    for m in methods:
        dpsnr = {k: rows[m]["psnr"] - rows[baseline]["psnr"] for k, rows in table.items()}
        ratio = {k: rows[m]["lpips"] / rows[baseline]["lpips"] for k, rows in table.items()
                 if rows[baseline]["lpips"] > 0 and math.isfinite(rows[m]["lpips"])}  # fmt: skip
        worst_p = min(dpsnr, key=lambda k: dpsnr[k])
        text_r = "–"
        if ratio:
            worst_r = max(ratio, key=lambda k: ratio[k])
            text_r = f"{ratio[worst_r]:.2f} ({worst_r})"
        lines.append(f"| {m} | {dpsnr[worst_p]:+.2f} dB ({worst_p}) | {text_r} |")
    return [*lines, ""]
