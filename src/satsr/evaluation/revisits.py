"""Multi-revisit evaluation: revisit stacks as ``EvalPair``s, and fusion methods with their baselines.

Pairs carry ``revisits`` (N, C, h, w) with clouds and nodata already filled as ``satsr fuse`` fills
them (``satsr.io.masks.fill_masked``), their ``dt_days`` (target date minus revisit date), the HR
target, and as ``lr`` the per-pixel median of the revisits (what bicubic and the consistency
measures see). Methods use the first ``n`` revisits, so one set of pairs serves every N:

* ``fusion_method``: ``satsr.models.revisit_fusion`` (SatDiffMoE sampling; N = 1 is one conditional sample);
* ``mean_of_singles``: the mean of N independent single-image SRs;
* ``median_lr``: one single-image SR of the per-pixel median LR;
* ``best_single_oracle``: the single-image SR of the revisit closest to the HR (an upper bound on
  picking one revisit: it looks at the target).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from satsr.data.degradation import wald_degrade
from satsr.data.revisits import RevisitSimulator
from satsr.data.sources import EOLEARN_10M, EOLEARN_BAND_DATE, Scene
from satsr.defaults import DEFAULT_MIN_CLEAR
from satsr.diffusion.noise import mix_seed
from satsr.evaluation.datasets import EvalPair
from satsr.evaluation.harness import Method, PairMethod, image_lpips
from satsr.io.bands import S2_RGBN
from satsr.io.masks import fill_masked
from satsr.models.registry import Upscaler
from satsr.models.revisit_fusion import FusionConfig


def _first(pair: EvalPair, n: int) -> tuple[np.ndarray, tuple[float, ...]]:
    if pair.revisits is None or len(pair.revisits) < n:
        have = 0 if pair.revisits is None else len(pair.revisits)
        raise ValueError(f"{pair.name}: {n} revisits asked for, the pair has {have}")
    return pair.revisits[:n], pair.dt_days[:n]


def simulated_revisit_pairs(
    scenes: Sequence[Scene],
    count: int,
    crop: int = 128,  # HR side of a pair, pixels (a multiple of the scale)
    revisits: int = 16,
    max_dt_days: float = 90.0,  # dt uniform in [-max_dt_days, max_dt_days]
    simulator: RevisitSimulator | None = None,
    seed: int = 0,
) -> list[EvalPair]:
    """``count`` pairs cut from ``scenes`` on a regular grid, each with ``revisits`` simulated revisits.

    Revisits with a clear share below ``satsr fuse``'s default ``--min-clear`` are replaced by fresh
    draws (the CLI drops them); masked pixels of the others are filled. Every draw is fixed by ``seed``.
    """
    simulator = simulator or RevisitSimulator()
    s = simulator.scale
    margin = s * s  # HR pixels of real neighbours around the crop, cut after simulation (as in training)
    windows = []
    for scene in scenes:
        _, height, width = scene.pixels.shape
        step = crop + 2 * margin
        windows += [(scene, top, left) for top in range(0, height - step + 1, step)
                    for left in range(0, width - step + 1, step)]  # fmt: skip
    if len(windows) < count:
        raise ValueError(f"the scenes hold {len(windows)} crops of {crop} px, {count} asked for")
    picks = np.linspace(0, len(windows) - 1, count).round().astype(int)
    pairs = []
    for k, index in enumerate(picks):
        scene, top, left = windows[index]
        side = crop + 2 * margin
        hr_margin = torch.from_numpy(scene.pixels[:, top : top + side, left : left + side].copy())
        generator = torch.Generator().manual_seed(mix_seed(seed, k))
        lrs: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        dts: list[float] = []
        while len(lrs) < revisits:
            dt = max_dt_days * (2 * float(torch.rand((), generator=generator)) - 1)
            lr, clear = simulator.simulate(hr_margin, dt, generator)
            m = margin // s
            lr, clear = lr[:, m:-m, m:-m], clear[m:-m, m:-m]
            if float(clear.float().mean()) >= DEFAULT_MIN_CLEAR:
                lrs.append(lr.numpy())
                masks.append(clear.numpy())
                dts.append(round(dt, 1))
        stack = fill_masked(np.stack(lrs).astype(np.float32), np.stack(masks))
        pairs.append(
            EvalPair(
                f"{scene.name}_{top}_{left}", np.median(stack, axis=0).astype(np.float32),
                hr_margin[:, margin:-margin, margin:-margin].numpy(), tuple(simulator.bands), "wald",
                scene.name, revisits=stack, dt_days=tuple(dts),
            )
        )  # fmt: skip
    return pairs


def deimos_pair(path: Path) -> EvalPair:
    """The real Deimos-2 revisit sample (``pairs/deimos/data_eopatch-*.npz``) as a pair.

    Five real Sentinel-2 acquisitions (32 x 32 x 4 reflectance, B02 B03 B04 B08) before one Deimos-2
    image at 4x (128 x 128 x 4, standardised per band, not reflectance). The target is put on the S2
    radiometry by giving each band the mean and std of the median S2 image (Deimos-2 has no
    reflectance here), so scores measure spatial detail and not calibration.
    """
    with np.load(path, allow_pickle=True) as data:
        features = data["features"].astype(np.float32).transpose(0, 3, 1, 2)  # (N, C, h, w)
        labels = data["labels"].astype(np.float32).transpose(2, 0, 1)  # (C, H, W)
        target = _as_date(data["timetamps_deimos"].item())  # (sic: the upstream key)
        dates = [_as_date(t) for t in data["timestamps_s2"]]
    median = np.median(features, axis=0)
    z = (labels - labels.mean((1, 2), keepdims=True)) / labels.std((1, 2), keepdims=True)
    hr = z * median.std((1, 2), keepdims=True) + median.mean((1, 2), keepdims=True)
    dts = tuple(float((target - d).days) for d in dates)
    order = np.argsort([abs(dt) for dt in dts], kind="stable")  # nearest date first
    return EvalPair(
        path.stem, median.astype(np.float32), hr.astype(np.float32), S2_RGBN, "real",
        str(path), revisits=features[order], dt_days=tuple(dts[i] for i in order),
    )  # fmt: skip


def _as_date(value: object) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.datetime.fromisoformat(str(value)).date()


def fusion_method(
    upscaler: Upscaler,
    n: int,
    steps: int | None = None,
    seed: int = 0,
    config: FusionConfig | None = None,
) -> PairMethod:
    """The fusion (``satsr.models.revisit_fusion``) of the first ``n`` revisits of each pair (one output
    image); ``steps`` overrides the ``config``'s."""
    if not upscaler.can_fuse:
        raise ValueError(f"{upscaler.name} is not a latent diffusion model: it cannot fuse revisits")
    settings = (config or upscaler.fusion_config).with_steps(steps)

    def run(pair: EvalPair) -> np.ndarray:
        lrs, dts = _first(pair, n)
        return upscaler.fuse(np.ascontiguousarray(lrs), list(dts), mix_seed(seed, 0), settings)

    return PairMethod(run)


def mean_of_singles(single: Method, n: int) -> PairMethod:
    """The mean of the single-image SRs of the first ``n`` revisits."""
    return PairMethod(lambda pair: np.mean([single(lr) for lr in _first(pair, n)[0]], axis=0))


def median_lr(single: Method, n: int) -> PairMethod:
    """The single-image SR of the per-pixel median of the first ``n`` revisits."""
    return PairMethod(lambda pair: single(np.median(_first(pair, n)[0], axis=0).astype(np.float32)))


def best_single_oracle(single: Method, n: int) -> PairMethod:
    """Of the single-image SRs of the first ``n`` revisits, the one with the lowest LPIPS to the HR (as
    the harness scores it; mean absolute error where LPIPS cannot be computed).

    An oracle (it looks at the target), so the upper bound of any rule that picks one revisit.
    """

    def run(pair: EvalPair) -> np.ndarray:
        candidates = [single(lr) for lr in _first(pair, n)[0]]
        hr = torch.from_numpy(pair.hr)[None]
        scores = [image_lpips(torch.from_numpy(c)[None], hr, pair.bands) for c in candidates]
        if any(math.isnan(v) for v in scores):
            scores = [float(np.abs(c - pair.hr).mean()) for c in candidates]
        return candidates[int(np.argmin(scores))]

    return PairMethod(run)


def eolearn_wald_pair(path: Path, target: int = EOLEARN_BAND_DATE, scale: int = 4) -> EvalPair:
    """eo-learn's five real Sentinel-2 dates of one place (Slovenia, 10 m) by Wald's protocol: every date
    degraded ``scale`` times with the sensor's MTF is a revisit, the target date's own 10 m image is the
    HR (by default the last date; the first two are cloudy and hazy, their blue band 4 and 2 times the
    last's). The target date's revisit comes first, then the others in their file order; their dates are
    not known, so every ``dt_days`` is 0 (the first revisit is the anchor). ``lr`` is the per-pixel
    median, as for every revisit pair."""
    scenes = np.load(path)[..., list(EOLEARN_10M)].transpose(0, 3, 1, 2).astype(np.float32)
    side = min(scenes.shape[-2:]) // scale * scale
    hr = torch.from_numpy(np.ascontiguousarray(scenes[..., :side, :side]))
    lrs = wald_degrade(hr, scale, S2_RGBN).numpy()
    order = [target, *(i for i in range(len(scenes)) if i != target)]
    return EvalPair(
        f"eolearn_{path.stem}_target{target}", np.median(lrs, axis=0).astype(np.float32), hr[target].numpy(),
        S2_RGBN, "wald", str(path), revisits=lrs[order], dt_days=(0.0,) * len(order),
    )  # fmt: skip
