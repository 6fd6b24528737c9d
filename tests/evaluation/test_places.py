"""Evaluation pairs of the real held-apart places (needs ../shared/data)."""

import collections

import numpy as np
import pytest
import torch

from satsr.data.degradation import wald_degrade
from satsr.data.sources import EUROSAT_TEST_IDS, Scene, shared_data_dir
from satsr.evaluation.places import place_pairs, scene_pairs
from satsr.io.bands import S2_RGBN


def test_scene_pairs_are_aligned_tiles_of_one_degradation() -> None:
    pixels = np.random.default_rng(0).random((4, 70, 100), dtype=np.float32)
    pairs = scene_pairs(Scene("s", pixels, S2_RGBN, "town"), 4, tile_hr=32)
    assert len(pairs) == 2 * 3 and {p.kind for p in pairs} == {"town"}
    whole = wald_degrade(torch.from_numpy(pixels[:, :68, :100])[None], 4, S2_RGBN)[0].numpy()
    last = pairs[-1]
    assert last.name == "s_y32_x64" and last.hr.shape == (4, 32, 32) and last.lr.shape == (4, 8, 8)
    np.testing.assert_array_equal(last.hr, pixels[:, 32:64, 64:96])
    np.testing.assert_array_equal(last.lr, whole[:, 8:16, 16:24])
    (single,) = scene_pairs(Scene("t", pixels[:, :64, :64], S2_RGBN), 4, tile_hr=128)
    assert single.name == "t" and single.kind == "t" and single.hr.shape == (4, 64, 64)


def test_the_held_apart_pairs_cover_every_kind() -> None:
    try:
        root = shared_data_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data not present")
    pairs = place_pairs("test", root=root)
    kinds = collections.Counter(p.kind for p in pairs)
    assert kinds["T33UUB (mixed)"] == 16 and kinds["BigEarthNet (mixed)"] == 2
    eurosat = {k: n for k, n in kinds.items() if "mixed" not in k}
    assert len(eurosat) == 10 and set(eurosat.values()) == {len(EUROSAT_TEST_IDS)}
    assert all(p.hr.shape[-1] == 4 * p.lr.shape[-1] and p.degradation == "wald" for p in pairs)
