"""Continuous-scale pairs: one scale per batch, exact HR sides, seeded batches, on generated pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.conftest import pictures

from satsr.data.continuous import ContinuousAerialPatches, ContinuousDataModule, ScaleBatchSampler
from satsr.data.degradation import bicubic_degrade


def module(root: Path, **kwargs: object) -> ContinuousDataModule:
    args = {"lr_patch": 8, "batch_size": 3, "train_batches": 6, "num_workers": 0, "data_dir": root, **kwargs}
    data = ContinuousDataModule(**args)  # type: ignore[arg-type]
    data.setup("fit")
    return data


def test_every_batch_shares_one_scale_with_exact_hr_sides(tmp_path: Path) -> None:
    data = module(pictures(tmp_path))
    sampler = data.train_dataloader().batch_sampler
    assert isinstance(sampler, ScaleBatchSampler)
    scales = [sampler.scale_of(b) for b in range(6)]
    assert len(set(scales)) == 6 and all(1.0 <= s <= 8.0 for s in scales)
    for (lr, hr), scale in zip(data.train_dataloader(), scales, strict=True):
        assert lr.shape == (3, 3, 8, 8)
        assert hr.shape == (3, 3, round(8 * scale), round(8 * scale))
        torch.testing.assert_close(bicubic_degrade(hr, scale), lr, rtol=0, atol=1e-6)


def test_batches_are_fixed_by_the_seed_and_move_on_with_the_epoch(tmp_path: Path) -> None:
    root = pictures(tmp_path)

    def first_hr(seed: int, epoch: int = 0) -> torch.Tensor:
        loader = module(root, seed=seed).train_dataloader()
        loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        return next(iter(loader))[1]

    torch.testing.assert_close(first_hr(3), first_hr(3), rtol=0, atol=0)
    assert first_hr(3).shape != first_hr(4).shape or not torch.equal(first_hr(3), first_hr(4))
    assert first_hr(3).shape != first_hr(3, epoch=1).shape or not torch.equal(first_hr(3), first_hr(3, 1))


def test_validation_cycles_through_fixed_scales(tmp_path: Path) -> None:
    data = module(pictures(tmp_path), val_scales=(2.0, 3.4), val_rounds=2, seed=9)
    sides = [hr.shape[-1] for _, hr in data.val_dataloader()]
    assert sides == [16, 27, 16, 27]
    again = module(tmp_path, val_scales=(2.0, 3.4), val_rounds=2, seed=1)  # the training seed: no effect
    for (_, a), (_, b) in zip(data.val_dataloader(), again.val_dataloader(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_large_scales_draw_only_from_pictures_large_enough(tmp_path: Path) -> None:
    root = pictures(tmp_path)
    from satsr.data.sources import aerial_rgb_images

    patches = ContinuousAerialPatches(aerial_rgb_images("train", root), lr_patch=8, seed=0)
    assert patches.sorted_sides == sorted(patches.sorted_sides) and patches.sorted_sides[-1] == 96
    for index in range(20):
        lr, hr = patches[(index, 11.5)]  # 92 px crops: only the 96 px pictures qualify
        assert hr.shape == (3, 92, 92) and lr.shape == (3, 8, 8)
    with pytest.raises(ValueError, match="no picture is large enough"):
        patches[(0, 12.5)]


def test_the_sampler_rejects_scales_below_one() -> None:
    with pytest.raises(ValueError, match="min_scale"):
        ScaleBatchSampler(4, 2, min_scale=0.5)
    with pytest.raises(ValueError, match="fixed scales"):
        ScaleBatchSampler(4, 2, scales=[0.8])
