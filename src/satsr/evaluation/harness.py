"""The benchmark behind ``satsr evaluate``: SR methods against bicubic on LR/HR pairs, with a report.

Every method maps one LR image (C, h, w) to an SR image of the HR size (C, H, W). Per pair it is
scored with PSNR, SSIM, SAM, ERGAS (``metrics.py``), LPIPS on RGB (``satsr.nn.lpips``) and the opensr-test
measures (``opensr_test.py``); FID (``fid.py``) compares the HR and SR sets cut into patches. A
``bicubic`` row (non-antialiased bicubic interpolation to the exact HR size) is always added.

Value ranges: PSNR and SSIM use a data range of 1 (reflectance, or pictures scaled to [0, 1]).
LPIPS and FID see RGB mapped to [0, 1] by dividing by ``display_white`` (0.3 reflectance for
Sentinel-2, as in ``scripts/eval_fast.py``; 1 for pictures) and clipping.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satsr.evaluation.datasets import EvalPair, load_pairs
from satsr.evaluation.fid import frechet_distance, inception_features
from satsr.evaluation.kinds import by_kind, kind_tables
from satsr.evaluation.methods import Method, PairMethod, bicubic_upsample, upscaler_method
from satsr.evaluation.metrics import SSIM_WINDOW, ergas, lr_grid_pattern, psnr, sam, ssim
from satsr.evaluation.opensr_test import DEFAULT_BORDER, opensr_test_metrics
from satsr.evaluation.report import (
    HR_LABEL,
    LR_LABEL,
    METRICS_FILE,
    REPORT_FILE,
    markdown_table,
    render_crops,
)
from satsr.io.bands import display_white, rgb_channels
from satsr.nn.lpips import LPIPS_MIN_SIDE, lpips

__all__ = [
    "BICUBIC", "EvalPair", "Method", "PairMethod", "bicubic_upsample", "evaluate", "load_pairs",
    "upscaler_method",
]  # fmt: skip

#: Name of the baseline row that every evaluation gets.
BICUBIC = "bicubic"
#: Side (HR pixels) of the patches the HR and SR images are cut into for FID.
DEFAULT_FID_PATCH = 64
#: FID needs this many patches per set to estimate a covariance.
MIN_FID_PATCHES = 2
#: Pairs shown as comparison crops, and the largest HR side of a crop.
DEFAULT_CROPS = 3
CROP_PANEL_HR = 128
#: Columns of the report: metric key -> header (arrow: which direction is better).
COLUMNS = {
    "psnr": "PSNR dB ↑", "ssim": "SSIM ↑", "sam": "SAM ° ↓", "ergas": "ERGAS ↓", "lpips": "LPIPS ↓",
    "fid": "FID ↓", "reflectance": "cons. refl. ↓", "spectral": "cons. spectral ° ↓",
    "spatial": "cons. shift px ↓", "synthesis": "synthesis", "improvement": "improvement ↑",
    "omission": "omission ↓", "hallucination": "hallucination ↓", "grid": "LR-grid pattern ↓",
    "sec_per_mp": "s / MP ↓",
}  # fmt: skip


def _display_rgb(x: Tensor, rgb: tuple[int, int, int], white: float) -> Tensor:
    return (x[:, list(rgb)] / white).clamp(0.0, 1.0)


def _fid_patches(x: np.ndarray, rgb: tuple[int, int, int], white: float, patch: int) -> Tensor:
    """Non-overlapping ``patch``-sided RGB patches (N, 3, p, p) in [0, 1] of one (C, H, W) image."""
    side = min(patch, *x.shape[-2:])
    image = _display_rgb(torch.from_numpy(x)[None], rgb, white)[0]
    rows, cols = x.shape[-2] // side, x.shape[-1] // side
    tiles = image[:, : rows * side, : cols * side].reshape(3, rows, side, cols, side)
    return tiles.permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, side, side)


def _border(pair: EvalPair) -> int:
    """opensr-test border: 16 HR px, less on small tiles so that half of each side stays scored."""
    return min(DEFAULT_BORDER, min(pair.hr.shape[-2:]) // 4)


def image_lpips(sr: Tensor, hr: Tensor, bands: Sequence[str]) -> float:
    """LPIPS of one SR (1, C, H, W) against its HR as the harness scores it: RGB divided by the display
    white and clipped. NaN when ``bands`` hold no RGB or the image is too small for AlexNet."""
    rgb = rgb_channels(bands)
    if rgb is None or min(hr.shape[-2:]) < LPIPS_MIN_SIDE:
        return math.nan
    white = display_white(bands)
    return float(lpips(_display_rgb(sr, rgb, white), _display_rgb(hr, rgb, white), normalize=True)[0])


def _image_metrics(pair: EvalPair, sr_np: np.ndarray, scale: float) -> dict:
    """All per-image measures of one SR against its pair."""
    lr, sr, hr = (torch.from_numpy(x)[None] for x in (pair.lr, sr_np, pair.hr))
    values = {
        "psnr": float(psnr(sr, hr)[0]),
        "ssim": float(ssim(sr, hr)[0]) if min(hr.shape[-2:]) >= SSIM_WINDOW else math.nan,
        "sam": float(sam(sr, hr)[0]),
        "ergas": float(ergas(sr, hr, scale)[0]),
        "lpips": image_lpips(sr, hr, pair.bands),  # NaN without RGB bands or for small pictures
        "grid": _grid_pattern(sr, lr),
    }
    values |= opensr_test_metrics(lr, sr, hr, scale, _border(pair))  # registered on all bands, as opensr-test
    return values


def _grid_pattern(sr: Tensor, lr: Tensor) -> float:
    """``lr_grid_pattern`` of one output (no reference); NaN where it is not finer than its LR."""
    if not (lr.shape[-2] < sr.shape[-2] and lr.shape[-1] < sr.shape[-1]):
        return math.nan
    return float(lr_grid_pattern(sr, (lr.shape[-2], lr.shape[-1]))[0])


def _run(method: Method | PairMethod, pair: EvalPair, name: str) -> np.ndarray:
    if isinstance(method, PairMethod):
        sr = np.asarray(method.run(pair), dtype=np.float32)
    else:
        sr = np.asarray(method(pair.lr.copy()), dtype=np.float32)
    if sr.shape != pair.hr.shape:
        raise ValueError(f"method {name!r} returned {sr.shape} for {pair.name}, expected {pair.hr.shape}")
    if not np.isfinite(sr).all():
        raise ValueError(f"method {name!r} returned NaN or inf for {pair.name}")
    return sr


Window = tuple[slice, slice, slice]


def _panel_windows(pair: EvalPair, scale: float) -> tuple[Window, Window]:
    """Central (LR, HR) windows of a comparison crop, at most ``CROP_PANEL_HR`` HR pixels a side."""
    h, w = pair.lr.shape[-2:]
    side_lr = min(h, w, max(1, math.floor(CROP_PANEL_HR / scale)))
    top, left = (h - side_lr) // 2, (w - side_lr) // 2
    hr_top, hr_left, hr_side = round(top * scale), round(left * scale), round(side_lr * scale)
    everything = slice(None)
    return (
        (everything, slice(top, top + side_lr), slice(left, left + side_lr)),
        (everything, slice(hr_top, hr_top + hr_side), slice(hr_left, hr_left + hr_side)),
    )


def _mean(values: Sequence[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return float(np.nanmean(values)) if values else math.nan


def _json_safe(value: Any) -> Any:
    """JSON has no inf/NaN: non-finite floats become null, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _score_method(
    name: str, method: Method | PairMethod, pairs: Sequence[EvalPair], scale: float, context: _Context
) -> tuple[dict[str, float], list[dict[str, Any]], np.ndarray | None]:
    """Per-image rows, aggregates (without FID) and FID features of one method."""
    rows, features, seconds, megapixels = [], [], [], []
    for index, pair in enumerate(pairs):
        start = time.perf_counter()
        sr = _run(method, pair, name)
        seconds.append(time.perf_counter() - start)
        megapixels.append(sr.shape[-2] * sr.shape[-1] / 1e6)
        rows.append({"name": pair.name, **_image_metrics(pair, sr, scale)})
        if context.fid_patch is not None and context.rgb is not None:
            patches = _fid_patches(sr, context.rgb, context.white, context.fid_patch)
            features.append(inception_features(patches))
        if index in context.panels:
            context.panels[index][name] = sr[_panel_windows(pair, scale)[1]]
    keys = [key for key in rows[0] if key != "name"]
    aggregate = {key: _mean([row[key] for row in rows]) for key in keys}
    timed = slice(1, None) if len(pairs) > 1 else slice(None)  # the first call warms up
    aggregate["sec_per_mp"] = sum(seconds[timed]) / sum(megapixels[timed])
    return aggregate, rows, np.concatenate(features) if features else None


class _Context:
    """What every method's scoring shares: RGB channels, FID settings, the crop panels."""

    def __init__(
        self, pairs: Sequence[EvalPair], scale: float, fid_patch: int | None, crops: int | Sequence[str]
    ) -> None:
        self.rgb = rgb_channels(pairs[0].bands)
        self.white = display_white(pairs[0].bands)
        self.fid_patch = fid_patch
        if isinstance(crops, int):
            picks = {round(float(x)) for x in np.linspace(0, len(pairs) - 1, crops)} if crops > 0 else set()
        else:
            names = [pair.name for pair in pairs]
            missing = [name for name in crops if name not in names]
            if missing:
                raise ValueError(f"crops asked for pairs that are not evaluated: {', '.join(missing)}")
            picks = {names.index(name) for name in crops}
        self.panels: dict[int, dict[str, np.ndarray]] = {
            index: {LR_LABEL: pairs[index].lr[_panel_windows(pairs[index], scale)[0]]}
            for index in sorted(picks)
        }


def _check_inputs(
    methods: Mapping[str, Method | PairMethod], pairs: Sequence[EvalPair], scale: float
) -> None:
    if not pairs:
        raise ValueError("no pairs to evaluate")
    fusion = [name for name, m in methods.items() if isinstance(m, PairMethod)]
    if fusion and any(pair.revisits is None for pair in pairs):
        raise ValueError(f"methods {', '.join(fusion)} fuse revisits, but some pairs have none")
    if BICUBIC in methods or LR_LABEL in methods or HR_LABEL in methods:
        raise ValueError(f"method names {BICUBIC!r}, {LR_LABEL!r} and {HR_LABEL!r} are reserved")
    if len({pair.bands for pair in pairs}) != 1:
        raise ValueError(f"pairs mix band sets: {sorted({pair.bands for pair in pairs})}")
    for pair in pairs:
        expected = tuple(round(side * scale) for side in pair.lr.shape[-2:])
        if pair.hr.shape[-2:] != expected or pair.hr.shape[0] != pair.lr.shape[0]:
            raise ValueError(f"{pair.name}: HR {pair.hr.shape} is not LR {pair.lr.shape} x scale {scale}")


def evaluate(
    methods: Mapping[str, Method | PairMethod],
    pairs: Sequence[EvalPair],
    out_dir: Path,
    scale: float,
    *,
    fid: bool = True,
    fid_patch: int = DEFAULT_FID_PATCH,
    crops: int | Sequence[str] = DEFAULT_CROPS,
    title: str = "",
) -> dict:
    """Score ``bicubic`` and ``methods`` on ``pairs``; write ``metrics.json``, ``report.md`` and
    ``crops_K.png`` under ``out_dir``; return the content of ``metrics.json``.

    Aggregates are means over pairs (NaN values, e.g. LPIPS of tiles too small, left out); FID is
    computed once per method over all ``fid_patch``-sided patches of all pairs. When the pairs name
    their ``kind``, ``results_by_kind`` holds the same means per kind (``satsr.evaluation.kinds``) and
    the report shows each kind against bicubic. ``crops``: how many pairs to show as comparison crops
    (evenly spread), or the names of the pairs to show.
    """
    _check_inputs(methods, pairs, scale)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = _Context(pairs, scale, fid_patch if fid else None, crops)
    notes: list[str] = []
    hr_features = None
    if fid and context.rgb is not None:
        hr_features = np.concatenate(
            [inception_features(_fid_patches(p.hr, context.rgb, context.white, fid_patch)) for p in pairs]
        )
    results, per_image = {}, {}
    all_methods: dict[str, Method | PairMethod] = {BICUBIC: lambda lr: bicubic_upsample(lr, scale), **methods}
    for name, method in all_methods.items():
        aggregate, rows, features = _score_method(name, method, pairs, scale, context)
        aggregate["fid"] = math.nan
        if hr_features is not None and features is not None and len(hr_features) >= MIN_FID_PATCHES:
            aggregate["fid"] = frechet_distance(hr_features, features)
        results[name] = {key: aggregate[key] for key in COLUMNS if key in aggregate}
        per_image[name] = rows
    for index, pair in enumerate(pairs):
        if index in context.panels:
            context.panels[index][HR_LABEL] = pair.hr[_panel_windows(pair, scale)[1]]
    notes += _notes(pairs, context, fid, hr_features)
    metadata = _metadata(pairs, scale, context, hr_features, notes)
    payload = _json_safe({"title": title, "metadata": metadata, "results": results, "per_image": per_image})
    if any(pair.kind for pair in pairs):
        payload["results_by_kind"] = _json_safe(by_kind([pair.kind or "other" for pair in pairs], per_image))
    (out_dir / METRICS_FILE).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    _write_markdown(out_dir, title, payload, context, pairs)
    return dict(payload)


def _metadata(
    pairs: Sequence[EvalPair],
    scale: float,
    context: _Context,
    hr_features: np.ndarray | None,
    notes: list[str],
) -> dict[str, Any]:
    sources = sorted({pair.source for pair in pairs if pair.source})
    return {
        "scale": scale,
        "num_images": len(pairs),
        "num_files": len(sources),
        "data": os.path.commonpath(sources) if sources else None,
        "degradation": sorted({pair.degradation for pair in pairs}),
        "bands": list(pairs[0].bands),
        "lr_size": list(pairs[0].lr.shape[-2:]),
        "hr_size": list(pairs[0].hr.shape[-2:]),
        "display_white": context.white,
        "rgb_channels": list(context.rgb) if context.rgb is not None else None,
        "fid_patch": context.fid_patch,
        "fid_patches": None if hr_features is None else len(hr_features),
        "opensr_border_hr": _border(pairs[0]),
        "nodata_tiles_skipped": sum({pair.source: pair.nodata_skipped for pair in pairs}.values()),
        "notes": notes,
    }


def _notes(
    pairs: Sequence[EvalPair], context: _Context, fid: bool, hr_features: np.ndarray | None
) -> list[str]:
    notes = []
    skipped = sum({pair.source: pair.nodata_skipped for pair in pairs}.values())
    if skipped:
        notes.append(f"{skipped} tile(s) holding or touching nodata were left out of the evaluation.")
    if context.rgb is None:
        notes.append(f"Bands {', '.join(pairs[0].bands)} hold no RGB: LPIPS, FID and crops are skipped.")
    elif not fid:
        notes.append("FID was not computed (disabled).")
    elif hr_features is None or len(hr_features) < MIN_FID_PATCHES:
        notes.append(f"FID skipped: fewer than {MIN_FID_PATCHES} patches.")
    else:
        notes.append(
            f"FID over {len(hr_features)} HR and as many SR patches of {context.fid_patch} px; with fewer "
            "than 2048 patches it is biased upwards and only comparable between rows of this table."
        )
    notes.append(
        f"LPIPS (AlexNet v0.1) and FID on RGB divided by {context.white:g} and clipped to [0, 1]; "
        "PSNR/SSIM with data range 1; opensr-test measures with a "
        f"{_border(pairs[0])} px border; s / MP: seconds per megapixel of SR output on this machine "
        "(first pair not counted: warm-up)."
    )
    return notes


def _nan_for_null(value: Any) -> Any:
    """The inverse of ``_json_safe`` for tables: null back to NaN, recursively."""
    if isinstance(value, Mapping):
        return {k: _nan_for_null(v) for k, v in value.items()}
    return math.nan if value is None else value


def _write_markdown(
    out_dir: Path, title: str, payload: dict, context: _Context, pairs: Sequence[EvalPair]
) -> None:
    meta = payload["metadata"]
    table = {
        name: {COLUMNS[key]: (math.nan if value is None else value) for key, value in values.items()}
        for name, values in payload["results"].items()
    }
    lines = [
        f"# {title or 'satsr evaluation'}",
        "",
        f"- data: `{meta['data']}` ({meta['num_files']} file(s), {meta['num_images']} pair(s), "
        f"HR {meta['hr_size'][0]}x{meta['hr_size'][1]} px for the first)",
        f"- scale: {meta['scale']:g}, degradation: {', '.join(meta['degradation'])}, "
        f"bands: {', '.join(meta['bands'])}",
        "",
        markdown_table(table),
        "",
        *[f"- {note}" for note in meta["notes"]],
        "",
    ]
    if "results_by_kind" in payload:
        lines += ["## Per kind of place (means over the pairs of each kind)", ""]
        lines += kind_tables(_nan_for_null(payload["results_by_kind"]), BICUBIC)
    if context.panels and context.rgb is not None:
        lines += ["## Comparison crops (LR, bicubic, methods, HR; 2-98 % stretch of the HR)", ""]
        for k, (index, panels) in enumerate(sorted(context.panels.items())):
            file = f"crops_{k}.png"
            render_crops(panels, rgb=context.rgb).save(out_dir / file)
            lines += [f"{pairs[index].name}:", "", f"![{pairs[index].name}]({file})", ""]
    (out_dir / REPORT_FILE).write_text("\n".join(lines))
