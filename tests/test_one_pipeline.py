"""One path for every entry point: the same scene gives the same pixels, next to nodata too, whether it
comes as a file, in a folder, as a stack of (one) revisit, or as a DataArray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import torch
import xarray as xr

from satsr.models.registry import Upscaler
from satsr.models.revisit_fusion import FusionConfig
from satsr.pipelines import fuse_files, upscale_dataarray, upscale_file, upscale_folder
from tests.conftest import write_geotiff

BANDS = ("B02", "B03", "B04")
SCALE = 2


class BlurReplicate(Upscaler):
    """A 3 x 3 box blur, then pixel replication: every output pixel next to a masked one depends on the
    value the masked one was shown as (the fill); it fuses a stack of one revisit the same way."""

    def __init__(self) -> None:
        super().__init__("blur-replicate", torch.nn.Identity(), SCALE, BANDS, "test model")

    @property
    def can_fuse(self) -> bool:
        return True

    @property
    def fusion_config(self) -> FusionConfig:
        return FusionConfig()

    def fusion_steps(self, config: FusionConfig) -> int:
        return 1

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        x = torch.from_numpy(np.asarray(lr, np.float32))
        blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).numpy()
        return np.repeat(np.repeat(blurred, SCALE, axis=-2), SCALE, axis=-1)

    def fuse(self, revisits, dt_days, seed, config=None, origin=(0, 0)):  # type: ignore[no-untyped-def]
        assert len(revisits) == 1
        return self(revisits)[0]


def scene(tmp_path: Path) -> Path:
    """Float reflectance with NaN holes: whole pixels, and single bands."""
    rng = np.random.default_rng(7)
    values = rng.uniform(0.02, 0.4, (3, 20, 22)).astype(np.float32)
    values[:, 5, 6] = values[:, 12, 15:17] = np.nan  # every band
    values[1, 3, 10] = values[2, 16, 4] = np.nan  # one band
    return write_geotiff(tmp_path / "scene.tif", values, nodata=float("nan"), names=BANDS)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_every_entry_point_gives_the_same_pixels_next_to_nodata(tmp_path: Path) -> None:
    path, model, tiling = scene(tmp_path), BlurReplicate(), {"tile_size": 8, "overlap": 2}
    from_file = read(upscale_file(path, tmp_path / "file.tif", model, **tiling))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "scene.tif").write_bytes(path.read_bytes())
    results = list(upscale_folder(tmp_path / "folder", tmp_path / "out", model, **tiling))
    assert [r.error for r in results] == [None]
    from_folder = read(results[0].output)
    from_revisits = read(fuse_files([path], tmp_path / "fused.tif", model, **tiling))
    array = upscale_dataarray(rioxarray.open_rasterio(path), model, **tiling)
    assert isinstance(array, xr.DataArray)
    holes = np.isnan(from_file)
    assert holes[:, 10:12, 12:14].all() and holes[1, 6:8, 20:22].all() and not holes[0, 6:8, 20:22].any()
    # Valid pixels whose LR pixel touches a hole see the hole's fill through the blur: where entry points
    # with different fills would differ.
    lr_holes = np.isnan(read(path)).any(axis=0)
    touching = np.zeros_like(lr_holes)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            touching |= np.roll(lr_holes, (dy, dx), axis=(0, 1))
    next_to_holes = ~holes & np.repeat(np.repeat(touching & ~lr_holes, SCALE, 0), SCALE, 1)[None]
    assert next_to_holes.sum() > 100
    for other in (from_folder, from_revisits, array.values):
        np.testing.assert_array_equal(other[next_to_holes], from_file[next_to_holes])
        np.testing.assert_array_equal(other, from_file)  # everywhere, bit for bit, NaN where masked
