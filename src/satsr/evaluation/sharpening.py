"""Evaluating the sharpening of Sentinel-2's 20 m bands by its 10 m bands (DSen2's protocol).

The protocol (Lanaras et al. 2018, Sec. 4): every band is degraded one octave by Wald's protocol (the 10 m
bands to 20 m, the 20 m bands to 40 m), a method sharpens the 40 m bands with the 20 m guide, and the
result is compared with the real 20 m bands (``satsr.data.pairs.dsen2_triplet``). The simple baseline a
learned method must beat clearly, ``satsr.models.guided.high_pass_injection``, is a least-squares fit of
each band's detail on the guide's detail one octave further down, applied to the guide's own detail.

``sharpening_report`` scores methods on places and writes ``report.md``, ``metrics.json`` and ``crops.png``
(a red-edge and a SWIR band); ``satsr evaluate --protocol dsen2`` and ``make evaluate-sharpening`` call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from satsr.data.pairs import dsen2_triplet
from satsr.data.sources import BandScene
from satsr.evaluation.metrics import ergas, psnr, sam
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.io.grid import RasterError
from satsr.io.raster import RasterReader
from satsr.models.guided import bicubic_up, high_pass_injection
from satsr.models.registry import Upscaler
from satsr.models.ten_band import TEN_BANDS

#: ``(guide (B, 4, H, W), bands (B, 6, H / 2, W / 2)) -> bands (B, 6, H, W)``, reflectance.
Sharpen = Callable[[Tensor, Tensor], Tensor]
SCALE = 2
CROP_BANDS = ("B05", "B11")  # a red-edge and a SWIR band
CROP = (100, 200)  # rows and columns of the crops, on the 20 m grid


def band_scores(sr: Tensor, hr: Tensor, scale: int) -> dict[str, Tensor]:
    """Per-band RMSE and PSNR (reflectance, data range 1), shape (B, C), and SAM (degrees) and ERGAS per
    image, shape (B,)."""
    rmse = ((sr.double() - hr.double()) ** 2).mean(dim=(2, 3)).sqrt()
    per_band = torch.stack([psnr(sr[:, [c]], hr[:, [c]]) for c in range(sr.shape[1])], dim=1)
    return {"rmse": rmse, "psnr": per_band, "sam": sam(sr, hr), "ergas": ergas(sr, hr, scale)}


def baselines() -> dict[str, Sharpen]:
    return {
        "bicubic": lambda g, c: bicubic_up(c, SCALE),
        "high-pass injection": lambda g, c: high_pass_injection(g, c, S2_RGBN, S2_20M, SCALE),
    }


def ten_band_input(guide: Tensor, bands: Tensor) -> Tensor:
    """What a ten-band model reads: the guide, and the bands repeated 2 x 2 on its grid, in band-number
    order."""
    x = torch.empty(guide.shape[0], len(TEN_BANDS), *guide.shape[-2:])
    x[:, [TEN_BANDS.index(b) for b in S2_RGBN]] = guide
    x[:, [TEN_BANDS.index(b) for b in S2_20M]] = torch.kron(bands, torch.ones(2, 2))
    return x


def ten_band_method(upscaler: Upscaler) -> Sharpen:
    """A ten-band model (``s2-10band``) at scale 1 as a sharpening method: its 20 m bands."""
    model, twenty = upscaler.at_scale(1), [TEN_BANDS.index(b) for b in S2_20M]
    return lambda g, c: torch.from_numpy(np.asarray(model(ten_band_input(g, c).numpy())))[:, twenty]


def folder_band_scenes(folder: Path) -> list[BandScene]:
    """The places of ``folder``: each a raster of the four 10 m bands named ``PREFIX_10m...`` and one of the
    six 20 m bands named ``PREFIX_20m...`` beside it (how DSen2's and satsr's sample data are stored),
    read as one input (``satsr.io.inputs.stack_files``: grids checked, bands by name). Pixels must all be
    valid: a place with nodata is refused, naming it."""
    scenes = []
    for ten in sorted(folder.glob("*_10m*")):
        partners = sorted(folder.glob(ten.name.split("_10m")[0] + "_20m*"))
        if len(partners) != 1:
            continue
        with RasterReader(ten, [*S2_RGBN, *S2_20M], more=partners) as reader:
            values, valid = reader.read()
        if not valid.all():
            raise RasterError(f"{ten}: {int((~valid).sum())} pixels are nodata; crop them out to evaluate")
        fine, coarse = values[:4], np.ascontiguousarray(values[4:, ::2, ::2])
        scenes.append(BandScene(ten.name.split("_10m")[0], fine, coarse, "", "folder"))
    if not scenes:
        raise RasterError(f"{folder}: no pair of rasters PREFIX_10m*.tif (B02 B03 B04 B08) + PREFIX_20m*.tif")
    return scenes


def sharpening_report(
    methods: Mapping[str, Sharpen], scenes: Sequence[BandScene], out: Path, title: str
) -> dict:
    """Score ``methods`` on ``scenes`` by DSen2's protocol; per place and on average: per-band RMSE
    (reflectance x 10^4, i.e. L1C DN) and PSNR, SAM (degrees) and ERGAS. Writes ``out/report.md``,
    ``out/metrics.json`` and, when the first scene is large enough, ``out/crops.png`` (rows: a red-edge and
    a SWIR band of it; columns: the methods, then the truth)."""
    results: dict[str, dict[str, dict]] = {}
    crops: dict[str, np.ndarray] = {}
    (top, bottom), crop_scene = CROP, scenes[0].name if scenes else ""
    for scene in scenes:
        guide, coarse, truth = (x[None] for x in dsen2_triplet(scene, SCALE))
        for name, method in methods.items():
            with torch.no_grad():
                sr = method(guide, coarse)
            scores = band_scores(sr, truth, SCALE)
            results.setdefault(name, {})[scene.name] = {k: v[0].tolist() for k, v in scores.items()}
            if scene.name == crop_scene:
                crops[name] = sr[0, :, top:bottom, top:bottom].numpy()
        if scene.name == crop_scene:
            crops["truth (real 20 m)"] = truth[0, :, top:bottom, top:bottom].numpy()
    protocol = (
        "20 m bands sharpened x2 by the 10 m bands (DSen2 protocol): every band degraded one octave, the "
        "real 20 m bands as truth. RMSE in reflectance x 10^4 (L1C DN)."
    )
    lines = [f"# {title}", "", protocol, ""]
    for place in [*(s.name for s in scenes), "mean"]:
        lines += _place_table(results, place)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    if crops and min(c.shape[-1] for c in crops.values()) > 1:
        _save_crops(crops, out / "crops.png")
        lines.append(f"crops.png: {crop_scene}, rows {', '.join(CROP_BANDS)}; columns {', '.join(crops)}")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return results


def _place_table(results: dict[str, dict[str, dict]], place: str) -> list[str]:
    lines = [f"## {place}", "", "| method | " + " | ".join(f"{b} RMSE / PSNR" for b in S2_20M)
             + " | SAM ° | ERGAS |", "|---|" + "---:|" * (len(S2_20M) + 2)]  # fmt: skip
    for name, per_place in results.items():
        rows = [r for p, r in per_place.items() if p != "mean"] if place == "mean" else [per_place[place]]
        rmse, psnr_ = (np.mean([r[k] for r in rows], axis=0) for k in ("rmse", "psnr"))
        sam_, ergas_ = (float(np.mean([r[k] for r in rows])) for k in ("sam", "ergas"))
        cells = [f"{e * 1e4:.0f} / {p:.2f}" for e, p in zip(rmse, psnr_, strict=True)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sam_:.3f} | {ergas_:.3f} |")
        if place == "mean":
            per_place["mean"] = {"rmse": rmse.tolist(), "psnr": psnr_.tolist(), "sam": sam_, "ergas": ergas_}
    return [*lines, ""]


def _save_crops(crops: dict[str, np.ndarray], path: Path) -> None:
    truth, rows = crops["truth (real 20 m)"], []
    for band in CROP_BANDS:
        k = S2_20M.index(band)
        low, high = np.percentile(truth[k], [2, 98])
        grey = [
            (np.clip((c[k] - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
            for c in crops.values()
        ]
        rows.append(np.concatenate(grey, axis=1))
    Image.fromarray(np.kron(np.concatenate(rows, axis=0), np.ones((2, 2), np.uint8))).save(path)
