"""Lightning data modules: random LR/HR patches from the spatial train/val/test splits of ``sources``.

Training draws fresh random patches every epoch (``EpochSampler``); validation and test patches are
fixed (no augmentation, seed ``EVAL_SEED``) so their metrics compare across runs and seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from satsr.data.pairs import AerialPatches, PlacePatches
from satsr.data.revisits import RevisitPairs
from satsr.data.sources import Split, aerial_rgb_images, s2_rgbn_scenes
from satsr.io.bands import S2_RGBN

Source = Literal["s2", "aerial", "revisits"]
#: Band names of aerial pictures, in PIL's RGB order.
AERIAL_RGB = ("red", "green", "blue")
#: Seed of the validation and test patches, independent of the training seed.
EVAL_SEED = 12345


class EpochSampler(Sampler[int]):
    """Indices ``epoch * length + i``: the patch datasets draw patch ``index`` from ``(seed, index)``,
    so every epoch sees new random patches. Lightning calls ``set_epoch`` at the start of each epoch.
    """

    def __init__(self, length: int) -> None:
        self.length, self.epoch = length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.epoch * self.length, (self.epoch + 1) * self.length))


class SRDataModule(L.LightningDataModule):
    """LR/HR patch pairs for fixed- or float-scale SR training.

    ``s2``: Wald's-protocol pairs from real Sentinel-2 10 m B02, B03, B04, B08 reflectance (integer scale),
    of every place in ``satsr.data.sources`` (``PlacePatches``: each source drawn equally often).
    ``aerial``: antialiased-bicubic pairs from aerial RGB pictures in [0, 1] (any scale >= 1).
    ``revisits``: ``(lr, hr, dt_days, clear)`` from the ``s2`` scenes: one simulated revisit per HR crop
    (``satsr.data.revisits``), for time-conditioned fusion models.
    """

    def __init__(
        self,
        source: Source = "s2",  # which imagery and degradation
        scale: float = 4,  # HR / LR pixel-size ratio (an integer for s2)
        lr_patch: int = 32,  # LR patch side, pixels
        batch_size: int = 16,  # patches per batch
        train_length: int = 4096,  # training patches per epoch
        val_length: int = 256,  # fixed validation (and test) patches
        num_workers: int = 1,  # DataLoader worker processes
        seed: int = 0,  # seed of the training patches
        data_dir: Path | None = None,  # folder holding s2/ and aerial/; default: sources.shared_data_dir()
    ) -> None:
        super().__init__()
        if source in ("s2", "revisits") and not float(scale).is_integer():
            raise ValueError(f"Wald's protocol pairs need an integer scale, got {scale}")
        self.source, self.scale, self.lr_patch, self.batch_size = source, scale, lr_patch, batch_size
        self.train_length, self.val_length, self.num_workers, self.seed = (
            train_length,
            val_length,
            num_workers,
            seed,
        )
        self.data_dir = data_dir
        self.datasets: dict[Split, Dataset[tuple[Tensor, ...]]] = {}

    @property
    def bands(self) -> tuple[str, ...]:
        return AERIAL_RGB if self.source == "aerial" else S2_RGBN

    def patches(self, split: Split, length: int, augment: bool, seed: int) -> Dataset[tuple[Tensor, ...]]:
        """Patch pairs from one spatial split of the source."""
        if self.source == "revisits":
            scenes = s2_rgbn_scenes(split, self.data_dir)
            return RevisitPairs(scenes, int(self.scale), self.lr_patch, length, seed=seed, augment=augment)
        if self.source == "s2":
            scenes = s2_rgbn_scenes(split, self.data_dir)
            return PlacePatches(scenes, int(self.scale), self.lr_patch, length, augment, seed)
        images = aerial_rgb_images(split, self.data_dir)
        return AerialPatches(images, self.scale, self.lr_patch, length, augment, seed)

    def setup(self, stage: str) -> None:
        if stage == "fit" and "train" not in self.datasets:
            self.datasets["train"] = self.patches("train", self.train_length, True, self.seed)
        if stage in ("fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = self.patches("val", self.val_length, False, EVAL_SEED)
        if stage == "test" and "test" not in self.datasets:
            self.datasets["test"] = self.patches("test", self.val_length, False, EVAL_SEED)

    def band_statistics(self) -> tuple[list[float], list[float]]:
        """Per-band mean and std of the training pixels (rounded to 5 decimals, as in the bundled config)."""
        if self.source != "aerial":
            arrays = [s.pixels.reshape(len(self.bands), -1) for s in s2_rgbn_scenes("train", self.data_dir)]
        else:
            train = self.datasets.get("train") or self.patches("train", 1, False, self.seed)
            assert isinstance(train, AerialPatches)
            arrays = [train.image(i).reshape(3, -1) / 255.0 for i in range(len(train.images))]
        count = sum(a.shape[1] for a in arrays)
        mean = sum(a.sum(1, dtype=np.float64) for a in arrays) / count
        var = sum(((a - mean[:, None]) ** 2).sum(1, dtype=np.float64) for a in arrays) / count
        return np.round(mean, 5).tolist(), np.round(np.sqrt(var), 5).tolist()

    def _loader(self, split: Split) -> DataLoader[tuple[Tensor, ...]]:
        data = self.datasets[split]
        sampler = EpochSampler(self.train_length) if split == "train" else None
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=split == "train",
        )

    def train_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return self._loader("test")
