"""Shared by the tests: tiny generated rasters (real CRS and transform), tiny models (identity-like
stand-ins whose output is known, tiny diffusion and continuous-scale networks) and model folders."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin
from safetensors.torch import save_file

from satsr.io.bands import S2_RGBN
from satsr.models.continuous import ContinuousSR
from satsr.models.fast import ResidualSR
from satsr.models.ldm import LatentDiffusionSR
from satsr.models.registry import Upscaler


def write_geotiff(path: Path, data: np.ndarray, nodata: float | None = None, names=S2_RGBN) -> Path:
    count, height, width = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=height, width=width, count=count, dtype=data.dtype,
        crs=CRS.from_epsg(32633), transform=from_origin(399960.0, 5800020.0, 10.0, 10.0), nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data)
        for i, name in enumerate(names[:count], start=1):
            dst.set_band_description(i, name)
    return path


@pytest.fixture
def s2_tif(tmp_path: Path) -> Path:
    """A 40 x 52 four-band uint16 L1C-like raster with a smooth field plus texture."""
    yy, xx = np.mgrid[0:40, 0:52]
    base = 800 + 300 * np.sin(xx / 7) * np.cos(yy / 5)
    noise = np.random.default_rng(0).integers(0, 50, size=(4, 40, 52))
    dn = (base[None] + noise + np.arange(4)[:, None, None] * 200).astype(np.uint16)
    return write_geotiff(tmp_path / "scene.tif", dn, nodata=0)


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = {"architecture": "ResidualSR", "bands": list(S2_RGBN), "summary": "tiny test model",
              "in_channels": 4, "scale": 4, "channels": 8, "num_blocks": 1}  # fmt: skip
    model = ResidualSR(**{k: v for k, v in config.items() if k not in ("architecture", "bands", "summary")})
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    save_file(model.state_dict(), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def smooth_tif(tmp_path: Path) -> Path:
    """A 70 x 90 smooth uint16 scene, large enough for several tiles of 32 with overlap 8."""
    yy, xx = np.mgrid[0:70, 0:90]
    base = 1500 + 400 * np.sin(xx / 11) * np.cos(yy / 9)
    dn = (base[None] + 150 * np.arange(4)[:, None, None]).astype(np.uint16)
    return write_geotiff(tmp_path / "smooth.tif", dn, nodata=0)


# Tiny models -----------------------------------------------------------------------------------------

#: The scale of ``Replicate`` and ``NoisyReplicate``.
SCALE = 4


def nearest(lr: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(np.asarray(lr, dtype=np.float32), SCALE, axis=-2), SCALE, axis=-1)


class Replicate(Upscaler):
    """Pixel replication: an identity-like model whose exact output is known."""

    def __init__(self) -> None:
        super().__init__("replicate-x4", torch.nn.Identity(), SCALE, S2_RGBN, "test model")

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        return nearest(np.asarray(lr))


class NoisyReplicate(Replicate):
    """A stand-in sampling model: replication plus noise drawn from each item's own seed."""

    def __init__(self) -> None:
        super().__init__()
        self.stochastic, self.default_steps = True, 7
        self.calls: list[tuple[int, int | None]] = []

    def __call__(
        self,
        lr: np.ndarray | torch.Tensor,
        seeds: Sequence[int] | None = None,
        steps: int | None = None,
        origins: Sequence[tuple[int, int]] | None = None,
    ) -> np.ndarray:
        assert seeds is not None and origins is not None and len(seeds) == len(origins) == len(lr)
        self.calls.append((len(lr), steps))
        up = nearest(np.asarray(lr))
        noise = np.stack(
            [
                np.random.default_rng((s, *o)).normal(size=up.shape[1:])
                for s, o in zip(seeds, origins, strict=True)
            ]
        )
        return up + 0.01 * noise.astype(np.float32)


class DiesAt(NoisyReplicate):
    """Kills its process (no cleanup at all, like SIGKILL) or raises at the ``at``-th call."""

    def __init__(self, at: int, how: str = "exit") -> None:
        super().__init__()
        self.at, self.how = at, how

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.at:
            if self.how == "exit":
                os._exit(3)
            raise KeyboardInterrupt
        return super().__call__(lr, seeds, steps, origins)


#: The scale of ``NearestRGB``, and the band names of 8-bit RGB pictures.
RGB_SCALE = 2
RGB = ("red", "green", "blue")
#: A real aerial picture (tests that need it are skipped without ../shared/data).
NEON = Path(__file__).resolve().parents[2] / "shared" / "data" / "aerial" / "neon" / "OSBS_029.tif"


class NearestRGB(Upscaler):
    """Pixel replication x2 of three bands: every output pixel is known."""

    def __init__(self) -> None:
        super().__init__("nearest-rgb", torch.nn.Identity(), RGB_SCALE, RGB, "test model")

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        return nearest_rgb(np.asarray(lr))


def nearest_rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, RGB_SCALE, axis=-2), RGB_SCALE, axis=-1)


#: A latent diffusion model of a few thousand parameters (the ``LatentDiffusionSR`` constructor's config).
TINY_LDM = {
    "autoencoder": {"in_channels": 4, "latent_channels": 4, "channels": [8, 8, 8], "num_res_blocks": 1,
                    "downsampling_factor": 4},
    "unet": {"latent_channels": 4, "cond_channels": 8, "channels": [8, 16], "num_res_blocks": 1,
             "noise_features": 8},
    "reference": {"in_channels": 4, "scale": 4, "channels": 8, "num_blocks": 1},
    "default_steps": 3,
}  # fmt: skip


def tiny_ldm(**overrides: object) -> LatentDiffusionSR:
    torch.manual_seed(0)
    model = LatentDiffusionSR(**{**TINY_LDM, **overrides}).eval()  # type: ignore[arg-type]
    # A zero-initialised output layer would make every sample equal: give the UNet a random output.
    torch.nn.init.normal_(model.precond.net.conv_out.weight, std=0.1)
    return model


def lr_batch(n: int = 2, side: int = 16) -> torch.Tensor:
    return 0.05 + 0.2 * torch.rand(n, 4, side, side, generator=torch.Generator().manual_seed(1))


def save_ldm(model: LatentDiffusionSR, folder: Path, **config: object) -> Path:
    """``model`` in the bundled format, its config being TINY_LDM updated with ``config``."""
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    full = {
        "architecture": "LatentDiffusionSR",
        "bands": list(S2_RGBN),
        "summary": "tiny",
        "scale": 4,
        **TINY_LDM,
    }
    (folder / "config.json").write_text(json.dumps({**full, **config}))
    return folder


def time_conditioned_ldm() -> LatentDiffusionSR:
    model = tiny_ldm(unet={**TINY_LDM["unet"], "time_conditioning": True})  # type: ignore[dict-item]
    torch.nn.init.normal_(model.precond.net.dt_embed.last.weight, std=0.5)  # type: ignore[union-attr]
    return model


#: The lossless first stage instead of the KL autoencoder.
SPACE_TO_DEPTH = {
    "autoencoder": {"architecture": "SpaceToDepth", "in_channels": 4, "downsampling_factor": 4},
    "unet": {"latent_channels": 64, "cond_channels": 68, "channels": [8, 16], "num_res_blocks": 1,
             "noise_features": 8},
}  # fmt: skip


#: A continuous-scale E2DiffSR model of a few thousand parameters.
TINY_CONTINUOUS = {
    "channels": 8, "num_units": 4, "blocks_per_unit": 1, "pyramid_channels": 4, "mlp_hidden": 8,
    "mlp_layers": 2, "encoder_channels": [4, 4, 8, 8], "denoiser_channels": [8, 8],
}  # fmt: skip


def tiny_continuous(prior: bool = True, seed: int = 0, **kwargs: object) -> ContinuousSR:
    torch.manual_seed(seed)
    model = ContinuousSR(**{**TINY_CONTINUOUS, "prior": prior, **kwargs}).eval()  # type: ignore[arg-type]
    # The UNet's and the pixel MLP's last layers start at zero: give them something to say.
    torch.nn.init.normal_(model.upsampler.mlp[-1].weight, std=0.3)
    if model.denoiser is not None:
        torch.nn.init.normal_(model.denoiser.conv_out.weight, std=0.1)
    return model


@pytest.fixture
def fusion_model_dir(tmp_path: Path) -> Path:
    """A tiny time-conditioned (multi-revisit fusion) model folder."""
    unet = {**TINY_LDM["unet"], "time_conditioning": True}  # type: ignore[dict-item]
    return save_ldm(time_conditioned_ldm(), tmp_path / "tiny-fusion", unet=unet)


# Revisits of one place -------------------------------------------------------------------------------


def write_revisit(path: Path, dn: np.ndarray, pixel: float = 10.0, nodata: float | None = 0) -> Path:
    _, h, w = dn.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=h, width=w, count=4, dtype="uint16", nodata=nodata,
        crs=CRS.from_epsg(32633), transform=from_origin(399960.0, 5800020.0, pixel, pixel),
    ) as dst:  # fmt: skip
        dst.write(dn)
        dst.descriptions = S2_RGBN
    return path


def revisit_dn(seed: int, side: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    base = 1200 + 300 * np.sin(xx / 4) * np.cos(yy / 5)
    return (base[None] + 100 * np.arange(4)[:, None, None] + rng.integers(0, 30, (4, side, side))).astype(
        np.uint16
    )


def revisits(tmp_path: Path) -> list[Path]:
    return [
        write_revisit(tmp_path / "S2_20220301.tif", revisit_dn(0)),
        write_revisit(tmp_path / "S2_20220308.tif", revisit_dn(1, 12), pixel=20.0),  # another grid
        write_revisit(tmp_path / "S2_20220315.tif", revisit_dn(2)),
    ]


def pictures(root: Path, sides: tuple[int, ...] = (40, 40, 40, 72, 72, 72, 96, 96, 96, 96)) -> Path:
    """``root/aerial/set/class/*.jpg`` of the given sides (``aerial_rgb_images`` splits them 70/15/15)."""
    folder = root / "aerial" / "set" / "class"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, side in enumerate(sides):
        yy, xx = np.mgrid[0:side, 0:side]
        rgb = np.stack([120 + 90 * np.sin(xx / 5 + i + c) * np.cos(yy / 7) for c in range(3)], axis=-1)
        Image.fromarray((rgb + rng.integers(0, 10, rgb.shape)).astype(np.uint8)).save(folder / f"{i:02d}.jpg")
    return root
