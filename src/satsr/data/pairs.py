"""Random LR/HR patch pairs made on the fly from real scenes.

Wald's protocol for Sentinel-2: ``PlacePatches`` (many places of any size, every source drawn equally
often) and ``WaldPatches`` (crops of large scenes, degraded with a margin); antialiased bicubic for
aerial RGB (``AerialPatches``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.data.sources import BandScene, Scene
from satsr.io.bands import S2_20M, S2_RGBN


def dihedral(x: Tensor, k: int) -> Tensor:
    """One of the 8 flips/rotations of the square (k in 0..7) on the last two axes."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


class WaldPatches(Dataset[tuple[Tensor, Tensor]]):
    """HR crops of real S2 scenes and their Wald-degraded LR, with dihedral augmentation.

    The HR crop is taken with a margin of ``scale`` LR pixels on each side so the blur sees real
    neighbours instead of padding; the margin is cut off after degradation.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        scale: int = 4,  # HR / LR pixel-size ratio
        lr_patch: int = 32,  # LR patch side, pixels
        length: int = 4096,  # samples per epoch
        augment: bool = True,  # random flips and 90-degree rotations
        seed: int = 0,  # base seed; sample i always draws the same patch
    ) -> None:
        self.scale, self.lr_patch, self.length, self.augment, self.seed = (
            scale,
            lr_patch,
            length,
            augment,
            seed,
        )
        self.margin = scale * scale  # HR pixels: ``scale`` LR pixels on each side
        self.side = lr_patch * scale + 2 * self.margin  # HR crop side before the margin is cut
        self.scenes = [s for s in scenes if min(s.pixels.shape[1:]) >= self.side]
        if not self.scenes:
            raise ValueError(f"no scene is large enough for {self.side} px HR crops")
        areas = np.array([s.pixels.shape[1] * s.pixels.shape[2] for s in self.scenes], dtype=np.float64)
        self.weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def hr_crop(self, index: int) -> Tensor:
        """Sample ``index``'s HR crop, margin included, augmented: the same for every call."""
        rng = np.random.default_rng((self.seed, index))
        scene = self.scenes[rng.choice(len(self.scenes), p=self.weights)]
        side = self.side
        _, height, width = scene.pixels.shape
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = torch.from_numpy(scene.pixels[:, top : top + side, left : left + side].copy())
        return dihedral(crop, int(rng.integers(8))) if self.augment else crop

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        crop = self.hr_crop(index)
        bands = self.scenes[0].bands
        lr = wald_degrade(crop[None], self.scale, bands)[0]
        m = self.margin // self.scale
        return lr[:, m:-m, m:-m].contiguous(), crop[
            :, self.margin : -self.margin, self.margin : -self.margin
        ].contiguous()


class PlacePatches(Dataset[tuple[Tensor, Tensor]]):
    """Aligned LR/HR patches of many real places, with dihedral augmentation.

    Every scene is degraded once, whole, by Wald's protocol (reflect padding at its borders, as
    ``satsr.evaluation.datasets`` does for evaluation), and a sample is the LR window (r, c) of side
    ``lr_patch`` with its HR window (r * scale, c * scale) of side ``lr_patch * scale``. A sample
    draws a source (``Scene.source``) uniformly, then a scene of that source in proportion to its
    area, then a window uniformly: a 64-px EuroSAT tile of one land-cover class counts as much, per
    source, as a stretch of a 2000-px scene, so the many small places are not drowned by one big one.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        scale: int = 4,  # HR / LR pixel-size ratio
        lr_patch: int = 16,  # LR patch side, pixels
        length: int = 4096,  # samples per epoch
        augment: bool = True,  # random flips and 90-degree rotations
        seed: int = 0,  # base seed; sample i always draws the same patch
    ) -> None:
        self.scale, self.lr_patch, self.length, self.augment, self.seed = (
            scale,
            lr_patch,
            length,
            augment,
            seed,
        )
        side = lr_patch * scale
        usable = [s for s in scenes if min(s.pixels.shape[1:]) >= side]
        if not usable:
            raise ValueError(f"no scene is large enough for {side} px HR patches")
        self.hr: list[Tensor] = []
        self.lr: list[Tensor] = []
        for scene in usable:
            _, height, width = scene.pixels.shape
            hr = torch.from_numpy(
                np.ascontiguousarray(scene.pixels[:, : height // scale * scale, : width // scale * scale])
            )
            with torch.no_grad():
                self.lr.append(wald_degrade(hr[None], scale, scene.bands)[0].contiguous())
            self.hr.append(hr)
        groups: dict[str, list[int]] = {}
        for index, scene in enumerate(usable):
            groups.setdefault(scene.source, []).append(index)
        self.groups = list(groups.values())
        areas = [
            np.array([self.lr[i][0].numel() for i in members], dtype=np.float64) for members in self.groups
        ]
        self.group_weights = [a / a.sum() for a in areas]
        self.names = [s.name for s in usable]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng((self.seed, index))
        group = int(rng.integers(len(self.groups)))
        i = self.groups[group][rng.choice(len(self.groups[group]), p=self.group_weights[group])]
        lr_scene, hr_scene, p, s = self.lr[i], self.hr[i], self.lr_patch, self.scale
        top, left = rng.integers(0, lr_scene.shape[1] - p + 1), rng.integers(0, lr_scene.shape[2] - p + 1)
        lr = lr_scene[:, top : top + p, left : left + p]
        hr = hr_scene[:, top * s : (top + p) * s, left * s : (left + p) * s]
        if self.augment:
            k = int(rng.integers(8))
            lr, hr = dihedral(lr, k), dihedral(hr, k)
        return lr.contiguous(), hr.contiguous()


class AerialPatches(Dataset[tuple[Tensor, Tensor]]):
    """Random HR crops of aerial RGB pictures and their antialiased-bicubic LR, with dihedral augmentation.

    The LR of an HR crop of ``round(lr_patch * scale)`` pixels is ``bicubic_degrade(crop, scale)``, of
    ``round(hr / scale) == lr_patch`` pixels, so a float ``scale`` works as well as an integer one (the
    degradation of LIIF and E2DiffSR). Pictures are decoded on first use and kept as uint8.
    """

    def __init__(
        self,
        images: Sequence[Path],
        scale: float = 4,  # HR / LR pixel-size ratio; need not be an integer
        lr_patch: int = 32,  # LR patch side, pixels
        length: int = 4096,  # samples per epoch
        augment: bool = True,  # random flips and 90-degree rotations
        seed: int = 0,  # base seed; sample i always draws the same patch
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale, self.lr_patch, self.length, self.augment, self.seed = (
            scale,
            lr_patch,
            length,
            augment,
            seed,
        )
        self.hr_patch = round(lr_patch * scale)
        self.images = [p for p in images if min(_image_size(p)) >= self.hr_patch]
        if not self.images:
            raise ValueError(f"no image is large enough for {self.hr_patch} px HR crops")
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def image(self, i: int) -> np.ndarray:
        """Picture ``i`` as a (3, H, W) uint8 array, decoded once."""
        if i not in self._cache:
            with Image.open(self.images[i]) as picture:
                self._cache[i] = np.ascontiguousarray(np.asarray(picture.convert("RGB")).transpose(2, 0, 1))
        return self._cache[i]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        rng = np.random.default_rng((self.seed, index))
        pixels = self.image(int(rng.integers(len(self.images))))
        side = self.hr_patch
        _, height, width = pixels.shape
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        hr = torch.from_numpy(pixels[:, top : top + side, left : left + side].astype(np.float32) / 255.0)
        if self.augment:
            hr = dihedral(hr, int(rng.integers(8)))
        lr = bicubic_degrade(hr[None], self.scale)[0]
        return lr.contiguous(), hr.contiguous()


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with Image.open(path) as picture:
        return picture.size


def dsen2_triplet(scene: BandScene, scale: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """DSen2's protocol on one whole scene: (the 10 m bands degraded to 20 m, the 20 m bands degraded to 40 m,
    the real 20 m bands), each (C, H, W), cropped to whole pixels of twice the 40 m grid so that a method
    (high-pass injection) can look one octave below the 40 m bands."""
    unit = 2 * scale
    h, w = scene.coarse.shape[1] // unit * unit, scene.coarse.shape[2] // unit * unit
    fine = torch.from_numpy(np.ascontiguousarray(scene.fine[:, : 2 * h, : 2 * w]))[None]
    truth = torch.from_numpy(np.ascontiguousarray(scene.coarse[:, :h, :w]))[None]
    with torch.no_grad():
        return wald_degrade(fine, scale, S2_RGBN)[0], wald_degrade(truth, scale, S2_20M)[0], truth[0]
