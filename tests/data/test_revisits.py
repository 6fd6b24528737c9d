"""Simulated revisits: exact Wald's protocol without perturbations, change growing with |dt|,
reproducibility, and clouds reported in the mask."""

from __future__ import annotations

import torch

from satsr.data.degradation import wald_degrade
from satsr.data.revisits import RevisitPairs, RevisitSimulator, subpixel_shift
from satsr.data.sources import Scene
from satsr.io.bands import S2_RGBN

QUIET = {"max_shift_lr": 0.0, "gain": 0.0, "max_haze": 0.0, "noise_std": 0.0, "cloud_probability": 0.0}


def scene() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    red = 0.06 + 0.02 * torch.sin(xx / 5)
    nir = 0.35 + 0.05 * torch.cos(yy / 7)  # vegetation: NDVI ~ 0.7
    return torch.stack([0.05 + 0 * xx, 0.07 + 0 * xx, red, nir])


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_without_perturbations_a_revisit_is_walds_protocol() -> None:
    lr, clear = RevisitSimulator(**QUIET).simulate(scene(), 0.0, generator())  # type: ignore[arg-type]
    torch.testing.assert_close(lr, wald_degrade(scene()[None], 4, S2_RGBN)[0])
    assert clear.all()


def test_scene_change_grows_with_the_time_difference_and_is_seasonal() -> None:
    sim = RevisitSimulator(**QUIET)  # type: ignore[arg-type]
    same = sim.simulate(scene(), 0.0, generator())[0]
    change = [(sim.simulate(scene(), dt, generator())[0] - same).abs().mean() for dt in (10, 60, 182, 365)]
    assert change[0] < change[1] < change[2] and change[3] < 0.05 * change[2]


def test_a_seed_fixes_every_draw() -> None:
    sim = RevisitSimulator(cloud_probability=1.0)
    a, b, c = (sim.simulate(scene(), 30.0, generator(s)) for s in (1, 1, 2))
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1]) and not torch.allclose(a[0], c[0])


def test_clouds_are_bright_and_masked() -> None:
    lr, clear = RevisitSimulator(cloud_probability=1.0, max_cloud_cover=0.4).simulate(
        scene(), 0.0, generator(3)
    )
    assert 0.0 < (~clear).float().mean() <= 0.45
    assert lr[:3][:, ~clear].mean() > 2 * lr[:3][:, clear].mean()


def test_subpixel_shift_moves_content_by_the_asked_amount() -> None:
    x = torch.zeros(1, 16, 16)
    x[0, 8, 8] = 1.0
    shifted = subpixel_shift(x, 2.0, -3.0)
    assert shifted[0, 10, 5] > 0.99


def test_revisit_pairs_give_one_revisit_per_hr_with_its_time_difference() -> None:
    scenes = [Scene("a", scene().numpy(), S2_RGBN)]
    pairs = RevisitPairs(scenes, scale=4, lr_patch=8, length=6, max_dt_days=90, seed=1)
    lr, hr, dt, clear = pairs[0]
    assert lr.shape == (4, 8, 8) and hr.shape == (4, 32, 32) and clear.shape == (8, 8)
    assert -90 <= float(dt) <= 90
    again = pairs[0]
    torch.testing.assert_close(again[0], lr)
    assert len({round(float(pairs[i][2]), 3) for i in range(6)}) == 6  # a new time difference per sample
