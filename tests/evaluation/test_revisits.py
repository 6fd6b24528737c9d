"""Multi-revisit evaluation: simulated revisit pairs, the Deimos reader, fusion methods in the harness."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import time_conditioned_ldm
from tests.evaluation.conftest import natural_scene

from satsr.data.revisits import RevisitSimulator
from satsr.data.sources import Scene
from satsr.diffusion.noise import mix_seed
from satsr.evaluation.harness import EvalPair, evaluate
from satsr.evaluation.revisits import (
    best_single_oracle,
    deimos_pair,
    fusion_method,
    mean_of_singles,
    median_lr,
    simulated_revisit_pairs,
)
from satsr.io.bands import S2_RGBN
from satsr.models.registry import Upscaler


def scenes() -> list[Scene]:
    return [Scene("nat", natural_scene(1, 4, 128, seed=5)[0].numpy(), S2_RGBN)]


def test_simulated_pairs_hold_filled_revisits_and_are_fixed_by_the_seed() -> None:
    cloudy = RevisitSimulator(cloud_probability=1.0, max_cloud_cover=0.3)
    pairs = simulated_revisit_pairs(scenes(), 2, crop=32, revisits=5, simulator=cloudy, seed=3)
    again = simulated_revisit_pairs(scenes(), 2, crop=32, revisits=5, simulator=cloudy, seed=3)
    assert len(pairs) == 2 and {p.name for p in pairs} == {"nat_0_0", "nat_64_64"}
    for pair, other in zip(pairs, again, strict=True):
        assert (
            pair.revisits is not None and pair.revisits.shape == (5, 4, 8, 8) and pair.hr.shape == (4, 32, 32)
        )
        np.testing.assert_array_equal(pair.revisits, other.revisits)  # type: ignore[arg-type]
        assert len(pair.dt_days) == 5 and all(abs(dt) <= 90 for dt in pair.dt_days)
        np.testing.assert_allclose(pair.lr, np.median(pair.revisits, axis=0))
        # Clouds are bright (0.3-0.6 reflectance); filling replaced them with what other revisits see.
        assert pair.revisits.max() < pair.hr.max() + 0.1
    other_seed = simulated_revisit_pairs(scenes(), 2, crop=32, revisits=5, simulator=cloudy, seed=4)
    assert not np.allclose(other_seed[0].revisits, pairs[0].revisits)  # type: ignore[arg-type]


def write_deimos(path: Path) -> Path:
    rng = np.random.default_rng(0)
    features = 0.05 + 0.1 * rng.random((3, 32, 32, 4))
    labels = rng.normal(size=(128, 128, 4)).astype(np.float32)
    stamps = np.array([datetime.datetime(2020, 6, 1), datetime.datetime(2020, 7, 30),
                       datetime.datetime(2020, 7, 1)], dtype=object)  # fmt: skip
    np.savez(path, features=features, labels=labels, timestamps_s2=stamps,
             timetamps_deimos=np.array(datetime.datetime(2020, 8, 4), dtype=object))  # fmt: skip
    return path


def test_deimos_pair_orders_revisits_by_date_and_takes_the_s2_radiometry(tmp_path: Path) -> None:
    pair = deimos_pair(write_deimos(tmp_path / "data_eopatch-1.npz"))
    assert pair.dt_days == (5.0, 34.0, 64.0) and pair.revisits is not None
    assert pair.revisits.shape == (3, 4, 32, 32) and pair.hr.shape == (4, 128, 128)
    np.testing.assert_allclose(pair.hr.mean((1, 2)), pair.lr.mean((1, 2)), atol=1e-5)
    np.testing.assert_allclose(pair.hr.std((1, 2)), pair.lr.std((1, 2)), rtol=1e-4)


def pair_with_revisits() -> EvalPair:
    hr = natural_scene(1, 4, 64, seed=1)[0].numpy()
    lrs = np.stack([hr[:, ::4, ::4] + 0.01 * k for k in range(3)]).astype(np.float32)
    return EvalPair(
        "p", np.median(lrs, 0), hr, tuple(S2_RGBN), "wald", revisits=lrs, dt_days=(0.0, 5.0, -5.0)
    )


def upsample(lr: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(lr, 4, axis=-2), 4, axis=-1)


def test_baselines_use_the_first_n_revisits() -> None:
    pair = pair_with_revisits()
    assert pair.revisits is not None
    np.testing.assert_allclose(mean_of_singles(upsample, 2).run(pair), upsample(pair.revisits[:2].mean(0)))
    np.testing.assert_allclose(median_lr(upsample, 3).run(pair), upsample(pair.revisits[1]))
    # The oracle picks the revisit whose SR is closest to the target: here the one without offset.
    np.testing.assert_allclose(best_single_oracle(upsample, 3).run(pair), upsample(pair.revisits[0]))
    with pytest.raises(ValueError, match="4 revisits asked for, the pair has 3"):
        mean_of_singles(upsample, 4).run(pair)


def test_fusion_rows_in_the_harness(tmp_path: Path) -> None:
    model = time_conditioned_ldm()
    upscaler = Upscaler("tiny-fusion", model, 4, tuple(S2_RGBN), "", stochastic=True, default_steps=3)
    pair = pair_with_revisits()
    methods = {"fused": fusion_method(upscaler, 3, steps=4), "one": fusion_method(upscaler, 1, steps=4)}
    results = evaluate(methods, [pair], tmp_path, 4, fid=False, crops=1)
    saved = json.loads((tmp_path / "metrics.json").read_text())["results"]
    assert set(saved) == {"bicubic", "fused", "one"} and saved["fused"]["psnr"] != saved["one"]["psnr"]
    assert results["results"]["fused"]["lpips"] == saved["fused"]["lpips"]
    with torch.no_grad():
        direct = model.fuse(torch.from_numpy(pair.revisits), [0.0, 5.0, -5.0], seed=mix_seed(0, 0), steps=4)
    np.testing.assert_allclose(methods["fused"].run(pair), direct[0].numpy(), atol=1e-6)
    without = EvalPair("q", pair.lr, pair.hr, pair.bands)
    with pytest.raises(ValueError, match="fuse revisits, but some pairs have none"):
        evaluate({"fused": methods["fused"]}, [without], tmp_path, 4, fid=False)
