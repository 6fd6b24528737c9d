"""Tiny generated rasters (real CRS and transform) and a tiny model folder for fast tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from safetensors.torch import save_file

from satsr.io.bands import S2_RGBN
from satsr.models.fast import ResidualSR


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
