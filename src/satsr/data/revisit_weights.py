"""Real revisits made comparable before they are fused, and how far each one is trusted, pixel by pixel.

Real Sentinel-2 revisits of one place differ in more than their noise (measured on the Deimos sample and
eo-learn's reference scenes, ``scripts/revisit_diagnostics.py``): band gains of 0.5-1.25 between dates
a few weeks apart (illumination, phenology, haze), translations of 0.1-0.4 LR pixels, and whole dates of
haze or cloud that the clear-pixel test let through. Fused as they come, they pull the result away from
the target date. So, against the **anchor** (the revisit nearest the target date; ``anchor_index``):

1. every other revisit is **registered** onto the anchor: the translation that maximises the correlation
   of their band means (from phase correlation's estimate, ``satsr.data.registration``), applied by
   cubic-spline interpolation, unless it is longer than ``max_shift`` LR pixels (then it is not trusted
   and the revisit stays as it is);
2. **harmonised** to it: per band, the gain and offset of a robust least-squares fit (from gain 1; 3
   rounds, pixels further than 3 robust standard deviations dropped) on 3 x 3-smoothed pixels, which
   misregistration and real change disturb least;
3. **weighted** per LR pixel, the anchor 1 everywhere, another revisit by the product of
   - closeness in time, ``exp(-|dt - dt_anchor| / time_scale_days)`` (dates unknown: 1);
   - how little it had to be corrected, ``exp(-(rms of log gains / log(1 + gain_tolerance))^2 / 2)``:
     a date that needs its contrast doubled is hazy, and its detail is noise amplified; a date with a
     band that runs against the anchor's (no positive gain fits: snow, cloud) weighs 0, the limit of a
     gain tending to 0;
   - agreement with the anchor there, ``1 / (1 + (d / agreement_scale)^2)``, with ``d`` the
     3 x 3-smoothed root-mean-square difference over bands after steps 1-2 (reflectance): a cloud, a
     shadow, a harvested field or a flooded meadow the anchor does not show weighs nearly nothing.

A stack whose other dates disagree everywhere therefore falls back to the anchor alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from satsr.data.registration import phase_correlation_shift

#: Rounds of the robust gain / offset fit, and how many robust standard deviations a pixel may be off.
_FIT_ROUNDS, _FIT_CUTOFF = 3, 3.0
#: Border pixels the registration does not compare (interpolation there repeats the edge).
_EDGE = 2


@dataclass(frozen=True)
class RevisitWeighting:
    """How revisits are aligned and weighted (see the module docstring); each step can be switched off
    (the ablations of the fusion model card)."""

    register: bool = True
    harmonise: bool = True
    weigh: bool = True  # False: every revisit weighs 1 everywhere (plain mean)
    max_shift: float = 1.5  # LR pixels: longer translations are not applied
    time_scale_days: float = 30.0
    gain_tolerance: float = 0.25  # gains within 1 +- this cost little weight
    agreement_scale: float = 0.01  # reflectance difference at which a revisit's weight halves


@dataclass(frozen=True)
class AlignedRevisits:
    lrs: Tensor  # (N, C, h, w): the revisits registered and harmonised onto the anchor
    weights: Tensor  # (N, h, w) in [0, 1]; the anchor's are 1
    anchor: int
    shifts: tuple[tuple[float, float], ...]  # (dy, dx) applied to each revisit, LR pixels
    gains: tuple[tuple[float, ...], ...]  # each revisit's per-band gain onto the anchor
    harmonised: Tensor  # (N, C, h, w): the revisits harmonised as ``lrs`` but on their own grids (unshifted)


def anchor_index(dt_days: Sequence[float]) -> int:
    """The revisit nearest the target date (``dt_days``: target minus revisit); of equally near ones, one
    before the target (dt >= 0), then the first."""
    return min(range(len(dt_days)), key=lambda i: (abs(dt_days[i]), dt_days[i] < 0, i))


def _smooth(x: np.ndarray) -> np.ndarray:
    """3 x 3 mean over the last two axes, edges by the pixels that exist."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    flat = t.reshape(-1, 1, *t.shape[-2:])
    return F.avg_pool2d(flat, 3, 1, 1, count_include_pad=False).reshape(t.shape).numpy()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def _bspline_shift(coefficients: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``ndimage.shift(coefficients, shift, order=3, mode="nearest", prefilter=False)`` of a 2-D array
    (cubic B-spline coefficients, ``ndimage.spline_filter``), separably: the same values at about twice
    the speed, which the registration's few dozen evaluations per revisit need."""
    out = coefficients
    for axis, s in enumerate(shift):
        size, whole = out.shape[axis], math.floor(-float(s))
        t = -float(s) - whole
        taps = ((1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3)
        pad = abs(whole) + 2
        widths = [(0, 0), (0, 0)]
        widths[axis] = (pad, pad)
        padded = np.pad(out, widths, mode="edge")
        start = whole - 1 + pad  # output i reads padded samples start + i .. start + i + 3
        window = [slice(None), slice(None)]
        total = np.zeros_like(out)
        for k, tap in enumerate(taps):
            window[axis] = slice(start + k, start + k + size)
            total += tap / 6 * padded[tuple(window)]
        out = total
    return out


def _pattern_search(
    cost: Callable[[np.ndarray], float], start: np.ndarray, step: float = 0.25, tolerance: float = 0.02
) -> np.ndarray:
    """A local minimum of ``cost`` over 2-D translations: from ``start``, move by ``step`` along an axis while
    that lowers the cost, else halve the step, until it is below ``tolerance`` (a few dozen evaluations)."""
    best, value = np.asarray(start, dtype=np.float64), cost(start)
    while step >= tolerance:
        for move in ((step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)):
            candidate = best + move
            candidate_value = cost(candidate)
            if candidate_value < value:
                best, value = candidate, candidate_value
                break
        else:
            step /= 2
    return best


def _register(
    moving: np.ndarray, anchor: np.ndarray, max_shift: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """``moving`` translated onto ``anchor``: phase correlation of their band means under a Hann window
    for a start, refined (``_pattern_search``) to the translation that maximises their correlation (a
    gain or offset between the dates changes nothing) over the pixels that do not differ grossly,
    ``_EDGE`` pixels off the border. Not applied if longer than ``max_shift``."""
    if min(anchor.shape[-2:]) < 4 * _EDGE:  # too small for a correlation peak that means anything
        return moving, (0.0, 0.0)
    a, m = anchor.mean(0).astype(np.float64), moving.mean(0).astype(np.float64)
    # Pixels far off (a cloud, a change) would steer the registration: compared without them, and filled
    # with the mean for the phase correlation.
    difference = m - a - np.median(m - a)
    spread = 1.4826 * np.median(np.abs(difference)) + 1e-6
    usable = ~ndimage.binary_dilation(np.abs(difference) > _FIT_CUTOFF * spread, iterations=2)
    if usable.mean() < 0.25:
        return moving, (0.0, 0.0)
    a_in, m_in = np.where(usable, a, a[usable].mean()), np.where(usable, m, m[usable].mean())
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    start = phase_correlation_shift((a_in - a_in.mean()) * window, (m_in - m_in.mean()) * window)
    if not np.all(np.isfinite(start)) or np.abs(start).max() > max_shift:
        start = np.zeros(2)
    usable[:_EDGE], usable[-_EDGE:], usable[:, :_EDGE], usable[:, -_EDGE:] = False, False, False, False

    coefficients = ndimage.spline_filter(m, order=3, mode="nearest")  # once, not at every evaluation

    def cost(shift: np.ndarray) -> float:
        moved = _bspline_shift(coefficients, shift)
        return -_correlation(moved[usable], a[usable])

    shift = _pattern_search(cost, min(start, np.zeros(2), key=cost))  # no shift if it correlates better
    if np.abs(shift).max() > max_shift or np.abs(shift).max() < 0.01:
        return moving, (0.0, 0.0)
    moved = np.stack([ndimage.shift(b, shift, order=3, mode="nearest") for b in moving])
    return moved.astype(moving.dtype), (float(shift[0]), float(shift[1]))


def _gain_offset(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """Robust least-squares ``y ~ gain x + offset`` over the pixels of two bands, starting from ``gain 1``:
    pixels that are far off under it (a cloud, a flooded field) never enter the first fit."""
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    gain, offset = 1.0, float(np.median(y - x))
    for _ in range(_FIT_ROUNDS):
        residual = y - (gain * x + offset)
        spread = 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-6
        keep = np.abs(residual - np.median(residual)) < _FIT_CUTOFF * spread
        if keep.sum() < 3 or np.ptp(x[keep]) == 0:
            break
        design = np.stack([x[keep], np.ones(int(keep.sum()))], axis=1)
        gain, offset = (float(v) for v in np.linalg.lstsq(design, y[keep], rcond=None)[0])
    if not gain > 0:  # an anti-correlated or flat band: no gain to fit (the offset alone harmonises it)
        return 1.0, float(np.median(y - x)), False
    return gain, offset, True


def align_revisits(
    lrs: Tensor, dt_days: Sequence[float], weighting: RevisitWeighting = RevisitWeighting()
) -> AlignedRevisits:
    """``lrs`` (N, C, h, w) reflectance of one place, masked pixels already filled, and their time
    differences to the target date -> the revisits aligned onto the anchor, and their weights."""
    if lrs.ndim != 4 or len(lrs) != len(dt_days):
        raise ValueError(f"expected (N, C, h, w) revisits and N time differences, got {tuple(lrs.shape)}")
    a = anchor_index(dt_days)
    x = lrs.detach().float().cpu().numpy()
    anchor, anchor_smooth = x[a], _smooth(x[a])
    aligned, harmonised, shifts, gains = x.copy(), x.copy(), [], []
    weights = np.ones((len(x), *x.shape[-2:]), dtype=np.float32)
    for i in range(len(x)):
        if i == a:
            shifts.append((0.0, 0.0))
            gains.append((1.0,) * x.shape[1])
            continue
        moved, shift = (x[i], (0.0, 0.0))
        if weighting.register:
            moved, shift = _register(x[i], anchor, weighting.max_shift)
        fits = [_gain_offset(b, r) for b, r in zip(_smooth(moved), anchor_smooth, strict=True)]
        if weighting.harmonise:
            moved = np.stack([g * b + o for (g, o, _), b in zip(fits, moved, strict=True)]).astype(np.float32)
            harmonised[i] = np.stack([g * b + o for (g, o, _), b in zip(fits, x[i], strict=True)])
        aligned[i] = moved
        shifts.append(shift)
        gains.append(tuple(g for g, _, _ in fits))
        if weighting.weigh:  # a band with no gain fitted is the limit of a gain tending to 0: no trust
            fitted = all(ok for _, _, ok in fits)
            dt = dt_days[i] - dt_days[a]
            weights[i] = _weight(moved, anchor, dt, gains[-1], weighting) if fitted else 0.0
    return AlignedRevisits(
        torch.from_numpy(aligned).to(lrs.device, lrs.dtype), torch.from_numpy(weights).to(lrs.device),
        a, tuple(shifts), tuple(gains), torch.from_numpy(harmonised).to(lrs.device, lrs.dtype),
    )  # fmt: skip


def _weight(
    moved: np.ndarray, anchor: np.ndarray, dt: float, gains: Sequence[float], weighting: RevisitWeighting
) -> np.ndarray:
    """One revisit's weight per LR pixel (module docstring, step 3)."""
    time = math.exp(-abs(dt) / weighting.time_scale_days)
    log_gain = float(np.sqrt(np.mean(np.log(np.asarray(gains, dtype=np.float64)) ** 2)))
    correction = math.exp(-0.5 * (log_gain / math.log1p(weighting.gain_tolerance)) ** 2)
    difference = np.sqrt(_smooth((moved - anchor) ** 2).mean(axis=0))
    return (time * correction / (1 + (difference / weighting.agreement_scale) ** 2)).astype(np.float32)
