"""The opensr-test measures of SR quality: consistency, synthesis and correctness.

Aybar et al. 2024, "A Comprehensive Benchmark for Optical Remote Sensing Image Super-Resolution"
(IEEE GRSL), re-implemented after the ESAOpenSR/opensr-test code (``Metrics`` with its default
``Config``: pixel aggregation, 16 px border, L1 reflectance, spectral angle, phase-correlation
alignment, ``nd`` correctness distance, gamma 0.05, softmin at T = 0.25).

Preparation of an (LR, SR, HR) triplet, per image:

* ``lr_up``: LR bilinearly resized (antialiased) to the HR grid; ``sr_down``: SR bilinearly
  resized with antialiasing to the LR grid.
* ``border`` HR pixels (``round(border / scale)`` LR pixels) are cropped from every side. Unlike
  opensr-test, which crops first, images are resampled at full size and cropped afterwards, so
  resampling edge effects stay outside the scored area and non-integer scales line up.
* ``sr_harm``: the cropped SR histogram-matched to the HR per band, then registered onto it by
  phase correlation (shifts above ``max_shift`` px are not applied); see ``alignment.py``.
  Registration, here and for the consistency shift, works on the mean of all bands, as opensr-test's
  satalign PCC does by default (``channel="mean"``); ``rgb`` restricts it to those bands.

Checked against opensr-test 1.3.3 itself (``scripts/opensr_test_agreement.py``, 174 triplets of the
held-apart places): synthesis and correctness agree to Pearson r >= 0.999; reflectance and spectral
consistency differ by the resample-then-crop order above (r 0.96-0.98; 1.000 with opensr-test's order),
and the spatial shift also by float64 against opensr-test's float32 phase correlation (r 0.59).

Inputs are (B, C, h, w) LR and (B, C, H, W) SR/HR tensors with ``H = round(h * scale)``; the
measures are computed per image (on the CPU, in float64) and averaged over the batch; images
whose measure is undefined (NaN) are skipped in that average.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from satsr.evaluation.alignment import (
    DEFAULT_MAX_SHIFT,
    harmonize,
    phase_correlation_shift,
    registration_layer,
)
from satsr.evaluation.metrics import sam

#: HR pixels cropped from each side before scoring (opensr-test ``border_mask``).
DEFAULT_BORDER = 16
#: Correctness: only pixels where some distance exceeds this quantile of d_ref are scored.
DEFAULT_QUANTILE = 0.75
#: Correctness: the "plambda" of opensr-test's improvement/omission/hallucination scores.
DEFAULT_GAMMA = 0.05
#: Correctness: softmin temperature turning the three scores into probabilities.
DEFAULT_TEMPERATURE = 0.25
#: Guards the denominators of the normalised difference and of d / d_ref.
_EPS = 1e-8
#: Names of the three correctness classes, in the order of the score stack.
CORRECTNESS_CLASSES = ("improvement", "omission", "hallucination")


@dataclass(frozen=True)
class Prepared:
    """A border-cropped triplet ready for scoring, float64; ``sr_harm`` is None without an HR."""

    lr: Tensor  # (B, C, h', w') LR
    sr_down: Tensor  # (B, C, h', w') SR resampled to the LR grid
    lr_up: Tensor  # (B, C, H', W') LR resampled to the HR grid
    sr: Tensor  # (B, C, H', W') SR
    hr: Tensor | None  # (B, C, H', W') HR
    sr_harm: Tensor | None  # (B, C, H', W') SR with HR histogram and alignment


def _check_scale(lr: Tensor, target: Tensor, scale: float, name: str) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    if lr.ndim != 4 or target.ndim != 4 or lr.shape[:2] != target.shape[:2]:
        raise ValueError(f"lr {tuple(lr.shape)} and {name} {tuple(target.shape)} must be (B, C, ., .) alike")
    expected = tuple(round(side * scale) for side in lr.shape[-2:])
    if tuple(target.shape[-2:]) != expected:
        raise ValueError(f"{name} is {tuple(target.shape[-2:])}, expected lr size x {scale} = {expected}")
    for tensor, label in ((lr, "lr"), (target, name)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{label} holds NaN or inf; opensr-test measures need complete images")


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resampling with antialiasing (opensr-test ``apply_upsampling``/``apply_downsampling``)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def _crop(x: Tensor, border: int) -> Tensor:
    if border == 0:
        return x
    if 2 * border >= min(x.shape[-2:]):
        raise ValueError(f"border of {border} px leaves nothing of an image of size {tuple(x.shape[-2:])}")
    return x[..., border:-border, border:-border]


def _harmonize_batch(sr: Tensor, hr: Tensor, rgb: Sequence[int] | None, max_shift: float) -> Tensor:
    harmonized = [
        harmonize(sr_i.numpy(), hr_i.numpy(), rgb, max_shift) for sr_i, hr_i in zip(sr, hr, strict=True)
    ]
    return torch.from_numpy(np.stack(harmonized))


def prepare(
    lr: Tensor,
    sr: Tensor,
    hr: Tensor | None,
    scale: float,
    border: int = DEFAULT_BORDER,
    rgb: Sequence[int] | None = None,
    max_shift: float = DEFAULT_MAX_SHIFT,
) -> Prepared:
    """Resample, crop and (with an HR) harmonise an (LR, SR, HR) batch as described in the module doc."""
    _check_scale(lr, sr, scale, "sr")
    if hr is not None:
        _check_scale(lr, hr, scale, "hr")
    if border < 0:
        raise ValueError(f"border must be non-negative, got {border}")
    lr64, sr64 = lr.detach().cpu().double(), sr.detach().cpu().double()
    border_lr = round(border / scale)
    sr_down = _crop(_resize(sr64, lr.shape[-2:]), border_lr)
    lr_up = _crop(_resize(lr64, sr.shape[-2:]), border)
    sr_crop = _crop(sr64, border)
    hr_crop = None if hr is None else _crop(hr.detach().cpu().double(), border)
    sr_harm = None if hr_crop is None else _harmonize_batch(sr_crop, hr_crop, rgb, max_shift)
    return Prepared(_crop(lr64, border_lr), sr_down, lr_up, sr_crop, hr_crop, sr_harm)


def _batch_mean(values: Tensor) -> float:
    return float(torch.nanmean(values.double()))


def _consistency(prepared: Prepared, rgb: Sequence[int] | None) -> dict[str, float]:
    reflectance = (prepared.lr - prepared.sr_down).abs().mean(dim=(1, 2, 3))
    spectral = sam(prepared.sr_down, prepared.lr)
    spatial = [
        float(
            np.hypot(*phase_correlation_shift(registration_layer(lr_i, rgb), registration_layer(sr_i, rgb)))
        )
        for lr_i, sr_i in zip(prepared.lr.numpy(), prepared.sr_down.numpy(), strict=True)
    ]
    return {
        "reflectance": _batch_mean(reflectance),
        "spectral": _batch_mean(spectral),
        "spatial": _batch_mean(torch.tensor(spatial)),
    }


def consistency(
    lr: Tensor,
    sr: Tensor,
    scale: float,
    border: int = DEFAULT_BORDER,
    rgb: Sequence[int] | None = None,
) -> dict[str, float]:
    """Consistency of the SR with its own LR input (no HR needed).

    ``reflectance``: mean |LR - sr_down|; ``spectral``: mean spectral angle (degrees) between LR
    and sr_down; ``spatial``: length in LR pixels of the phase-correlation shift between them
    (registered on the mean of all bands, or of the bands ``rgb``). Unlike opensr-test, which reports NaN for
    shifts above its 5 px plausibility limit, the measured shift is always reported.
    """
    return _consistency(prepare(lr, sr, None, scale, border, rgb), rgb)


def _synthesis(prepared: Prepared) -> float:
    if prepared.sr_harm is None:
        raise ValueError("synthesis needs an HR reference")
    return _batch_mean((prepared.lr_up - prepared.sr_harm).abs().mean(dim=(1, 2, 3)))


def synthesis(
    lr: Tensor,
    sr: Tensor,
    hr: Tensor,
    scale: float,
    border: int = DEFAULT_BORDER,
    rgb: Sequence[int] | None = None,
) -> float:
    """High-frequency detail added by the SR: mean |lr_up - sr_harm| (0 for plain interpolation)."""
    return _synthesis(prepare(lr, sr, hr, scale, border, rgb))


def normalized_difference(x: Tensor, y: Tensor) -> Tensor:
    """opensr-test's ``nd`` distance per pixel: mean over bands of |x - y| / |x + y|, (C, H, W) -> (H, W)."""
    return ((x - y).abs() / (x + y + _EPS).abs()).mean(dim=0)


def correctness_scores(d_im: Tensor, d_om: Tensor, gamma: float = DEFAULT_GAMMA) -> Tensor:
    """Distances to the improvement, omission and hallucination spaces, stacked as (3, ...).

    ``d_im`` = d(sr_harm, HR) / d_ref and ``d_om`` = d(sr_harm, lr_up) / d_ref; with
    H = d_im + d_om - 1: improvement = d_im + d_om (1 - e^(-gamma H)), omission =
    d_om + d_im (1 - e^(-gamma H)), hallucination = e^(-gamma d_im d_om) (opensr-test correctness.py).
    """
    h = d_im + d_om - 1
    damping = 1 - torch.exp(-gamma * h)
    improvement = d_im + d_om * damping
    omission = d_om + d_im * damping
    hallucination = torch.exp(-gamma * d_im * d_om)
    return torch.stack([improvement, omission, hallucination])


def _correctness_image(
    lr_up: Tensor, sr_harm: Tensor, hr: Tensor, quantile: float, gamma: float, temperature: float, norm: str
) -> Tensor:
    """Mean class probabilities (or argmax shares) over the scored pixels of one image, shape (3,)."""
    d_ref = normalized_difference(lr_up, hr).flatten()
    d_im = normalized_difference(sr_harm, hr).flatten()
    d_om = normalized_difference(sr_harm, lr_up).flatten()
    rank = max(1, int(quantile * d_ref.numel()))
    threshold = d_ref.kthvalue(rank).values
    scored = (d_ref > threshold) | (d_im > threshold) | (d_om > threshold)
    if not scored.any():
        return torch.full((len(CORRECTNESS_CLASSES),), math.nan, dtype=torch.float64)
    reference = d_ref[scored] + _EPS
    scores = correctness_scores(d_im[scored] / reference, d_om[scored] / reference, gamma)
    probabilities = torch.softmax(-scores / temperature, dim=0)  # softmin over the three classes
    if norm == "percent":
        winners = probabilities.argmax(dim=0)
        return torch.stack([(winners == k).double().mean() for k in range(len(CORRECTNESS_CLASSES))])
    return probabilities.mean(dim=1)


def _correctness(
    prepared: Prepared, quantile: float, gamma: float, temperature: float, norm: str
) -> dict[str, float]:
    if prepared.sr_harm is None or prepared.hr is None:
        raise ValueError("correctness needs an HR reference")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
    if norm not in ("softmin", "percent"):
        raise ValueError(f"norm must be 'softmin' or 'percent', got {norm!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    per_image = torch.stack(
        [
            _correctness_image(lr_up, sr_harm, hr, quantile, gamma, temperature, norm)
            for lr_up, sr_harm, hr in zip(prepared.lr_up, prepared.sr_harm, prepared.hr, strict=True)
        ]
    )
    return {name: _batch_mean(per_image[:, k]) for k, name in enumerate(CORRECTNESS_CLASSES)}


def correctness(
    lr: Tensor,
    sr: Tensor,
    hr: Tensor,
    scale: float,
    border: int = DEFAULT_BORDER,
    rgb: Sequence[int] | None = None,
    quantile: float = DEFAULT_QUANTILE,
    gamma: float = DEFAULT_GAMMA,
    temperature: float = DEFAULT_TEMPERATURE,
    norm: str = "softmin",
) -> dict[str, float]:
    """Share of improvement, omission and hallucination in the SR (opensr-test correctness).

    Per pixel, d_ref = nd(lr_up, HR), d_im = nd(sr_harm, HR), d_om = nd(sr_harm, lr_up). Pixels
    where any of them exceeds the ``quantile`` of d_ref are scored: d_im and d_om are divided by
    d_ref, turned into the three scores of :func:`correctness_scores` and into probabilities by a
    softmin at ``temperature``. ``norm="softmin"`` reports the mean probabilities, ``"percent"`` the
    share of pixels whose most likely class is each. The three values sum to 1.
    """
    return _correctness(prepare(lr, sr, hr, scale, border, rgb), quantile, gamma, temperature, norm)


def opensr_test_metrics(
    lr: Tensor,
    sr: Tensor,
    hr: Tensor,
    scale: float,
    border: int = DEFAULT_BORDER,
    rgb: Sequence[int] | None = None,
) -> dict[str, float]:
    """All opensr-test measures with default settings, from one preparation of the triplet.

    Keys: reflectance, spectral, spatial, synthesis, improvement, omission, hallucination.
    """
    prepared = prepare(lr, sr, hr, scale, border, rgb)
    return {
        **_consistency(prepared, rgb),
        "synthesis": _synthesis(prepared),
        **_correctness(prepared, DEFAULT_QUANTILE, DEFAULT_GAMMA, DEFAULT_TEMPERATURE, "softmin"),
    }
