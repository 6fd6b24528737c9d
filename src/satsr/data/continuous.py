"""Continuous-scale training pairs from aerial RGB pictures: one scale per batch (E2DiffSR, Sec. IV-B).

Every batch draws one scale uniformly in ``[min_scale, max_scale]``; its items are LR patches of
``lr_patch`` pixels and HR crops of ``round(lr_patch * scale)`` pixels, degraded with the antialiased
bicubic of ``AerialPatches`` and flipped/rotated at random. The sampler yields ``(index, scale)`` keys,
so the dataset stays a plain map-style dataset and ``DataLoader`` workers need no shared state. Batch
``g`` takes its scale from ``(seed, g)`` and item ``i`` its crop from ``(seed, i)``: the same seed gives
the same batches, and epoch ``e`` continues the stream with batches ``e * batches .. (e + 1) * batches``.

Only pictures at least ``round(lr_patch * scale)`` pixels wide can give a crop, so at large scales
the 150 px AID pictures drop out and the 400 px RSSCN7 and NEON pictures carry the batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from satsr.data.datamodules import AERIAL_RGB, EVAL_SEED, SRDataModule
from satsr.data.degradation import bicubic_degrade
from satsr.data.pairs import AerialPatches, dihedral
from satsr.data.sources import Split, aerial_rgb_images

#: E2DiffSR's training range of scale factors and LR patch side (Sec. IV-B).
MIN_SCALE, MAX_SCALE = 1.0, 8.0
LR_PATCH = 48
#: Scales of the fixed validation batches (integer and the paper's non-integer test scales).
VAL_SCALES = (2.0, 2.6, 3.4, 4.0, 6.0, 8.0)

Key = tuple[int, float]


class ScaleBatchSampler(Sampler[list[Key]]):
    """Batches of ``(index, scale)`` keys sharing one scale: uniform in ``[min_scale, max_scale]`` from
    ``(seed, batch number)``, or, with ``scales``, batch ``g`` at ``scales[g % len(scales)]``."""

    def __init__(
        self,
        num_batches: int,  # batches per epoch
        batch_size: int,  # keys per batch
        min_scale: float = MIN_SCALE,
        max_scale: float = MAX_SCALE,
        seed: int = 0,
        scales: Sequence[float] | None = None,  # fixed scales, cycled (validation)
    ) -> None:
        if not 1.0 <= min_scale <= max_scale:
            raise ValueError(f"need 1 <= min_scale <= max_scale, got {min_scale}, {max_scale}")
        if scales is not None and (not scales or min(scales) < 1.0):
            raise ValueError(f"fixed scales must be a non-empty list of values >= 1, got {scales}")
        self.num_batches, self.batch_size, self.seed = num_batches, batch_size, seed
        self.min_scale, self.max_scale = min_scale, max_scale
        self.scales = None if scales is None else [float(s) for s in scales]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def scale_of(self, batch: int) -> float:
        """The scale of global batch number ``batch``."""
        if self.scales is not None:
            return self.scales[batch % len(self.scales)]
        return float(np.random.default_rng((self.seed, batch)).uniform(self.min_scale, self.max_scale))

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[Key]]:
        for b in range(self.num_batches):
            batch = self.epoch * self.num_batches + b
            scale = self.scale_of(batch)
            yield [(batch * self.batch_size + k, scale) for k in range(self.batch_size)]


class ContinuousAerialPatches(Dataset[tuple[Tensor, Tensor]]):
    """``dataset[(index, scale)]`` -> LR (3, p, p) and HR (3, round(p * scale), round(p * scale)) in [0, 1].

    Pictures are decoded and cached by an ``AerialPatches``; the crop and its degradation follow it.
    """

    def __init__(
        self,
        images: Sequence[Path],
        lr_patch: int = LR_PATCH,  # LR patch side, pixels
        augment: bool = True,  # random flips and 90-degree rotations
        seed: int = 0,  # base seed; key (i, s) always draws the same patch
    ) -> None:
        self.pictures = AerialPatches(images, 1.0, lr_patch, length=1, augment=False, seed=seed)
        self.lr_patch, self.augment, self.seed = lr_patch, augment, seed
        sides = [min(_image_size(p)) for p in self.pictures.images]
        self.by_side = sorted(range(len(sides)), key=lambda i: sides[i])  # picture indices, smallest first
        self.sorted_sides = [sides[i] for i in self.by_side]

    def __len__(self) -> int:
        return len(self.pictures.images)

    def max_scale(self) -> float:
        """The largest scale some picture can give a crop for."""
        return (self.sorted_sides[-1] + 0.49) / self.lr_patch

    def __getitem__(self, key: Key) -> tuple[Tensor, Tensor]:
        index, scale = key
        side = round(self.lr_patch * scale)
        first = bisect.bisect_left(self.sorted_sides, side)
        if first == len(self.sorted_sides):
            raise ValueError(f"no picture is large enough for {side} px HR crops (scale {scale})")
        rng = np.random.default_rng((self.seed, index))
        pixels = self.pictures.image(self.by_side[int(rng.integers(first, len(self.by_side)))])
        _, height, width = pixels.shape
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        hr = torch.from_numpy(pixels[:, top : top + side, left : left + side].astype(np.float32) / 255.0)
        if self.augment:
            hr = dihedral(hr, int(rng.integers(8)))
        lr = bicubic_degrade(hr[None], scale)[0]
        return lr.contiguous(), hr.contiguous()


class ContinuousDataModule(L.LightningDataModule):
    """Aerial RGB pairs at a random scale per batch (training) and at ``val_scales`` (validation, test)."""

    bands = AERIAL_RGB

    def __init__(
        self,
        lr_patch: int = LR_PATCH,  # LR patch side, pixels
        batch_size: int = 4,  # patches per batch (all at one scale)
        min_scale: float = MIN_SCALE,  # training scales are uniform in [min_scale, max_scale]
        max_scale: float = MAX_SCALE,
        train_batches: int = 1000,  # training batches per epoch
        val_scales: Sequence[float] = VAL_SCALES,  # one validation batch per scale and round
        val_rounds: int = 2,  # validation batches = val_rounds * len(val_scales)
        num_workers: int = 1,  # DataLoader worker processes
        seed: int = 0,  # seed of the training batches
        data_dir: Path | None = None,  # folder holding aerial/; default: sources.shared_data_dir()
    ) -> None:
        super().__init__()
        self.lr_patch, self.batch_size, self.min_scale, self.max_scale = (
            lr_patch,
            batch_size,
            min_scale,
            max_scale,
        )
        self.train_batches, self.val_scales, self.val_rounds = train_batches, tuple(val_scales), val_rounds
        self.num_workers, self.seed, self.data_dir = num_workers, seed, data_dir
        self.datasets: dict[Split, ContinuousAerialPatches] = {}

    def patches(self, split: Split, augment: bool, seed: int) -> ContinuousAerialPatches:
        return ContinuousAerialPatches(aerial_rgb_images(split, self.data_dir), self.lr_patch, augment, seed)

    def setup(self, stage: str) -> None:
        if stage == "fit" and "train" not in self.datasets:
            self.datasets["train"] = self.patches("train", True, self.seed)
        if stage in ("fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = self.patches("val", False, EVAL_SEED)
        if stage == "test" and "test" not in self.datasets:
            self.datasets["test"] = self.patches("test", False, EVAL_SEED)

    def band_statistics(self) -> tuple[list[float], list[float]]:
        """Per-band mean and std of the training pictures (as ``SRDataModule`` computes them: whole
        pictures, so its patch size does not matter, only that some picture holds one)."""
        return SRDataModule("aerial", 1.0, self.lr_patch, data_dir=self.data_dir).band_statistics()

    def _loader(self, split: Split) -> DataLoader[tuple[Tensor, Tensor]]:
        if split == "train":
            sampler = ScaleBatchSampler(
                self.train_batches, self.batch_size, self.min_scale, self.max_scale, self.seed
            )
        else:
            count = self.val_rounds * len(self.val_scales)
            sampler = ScaleBatchSampler(count, self.batch_size, seed=EVAL_SEED, scales=self.val_scales)
        return DataLoader(
            self.datasets[split],
            batch_sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("test")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with Image.open(path) as picture:
        return picture.size
