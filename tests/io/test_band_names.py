"""Band names: one rule for every command (descriptions, else the file name); the model gets its bands
by name; an unnamed input is taken as the model's bands with a warning saying so."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
from tests.conftest import Replicate, nearest, write_geotiff

import satsr
from satsr.cli import main
from satsr.evaluation.datasets import _inspect
from satsr.io.bands import S2_RGBN
from satsr.io.raster import RasterReader
from satsr.pipelines import upscale_file

DSEN2_10M = (
    Path(__file__).resolve().parents[3]
    / "shared/data/s2/dsen2_l1c/S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif"
)
UNNAMED = (None, None, None, None)


class ByPosition(Replicate):
    """Replication that weighs channel k by 1 + k / 10: the output shows which band went where."""

    def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
        weights = 1 + np.arange(len(S2_RGBN), dtype=np.float32)[:, None, None] / 10
        return super().__call__(lr) * weights


def dn(bands: int = 4) -> np.ndarray:
    rng = np.random.default_rng(4)
    return (rng.integers(800, 2000, (bands, 10, 12)) + 500 * np.arange(bands)[:, None, None]).astype(
        np.uint16
    )


def by_name(path: Path) -> dict[str, np.ndarray]:
    with rasterio.open(path) as src:
        return {name: band for name, band in zip(src.descriptions, src.read(), strict=True)}


def test_named_bands_in_another_order_reach_the_model_by_name(tmp_path: Path) -> None:
    """B04 B03 B02 B08 in the file went to a B02 B03 B04 B08 model as they lay (B04 read as B02)."""
    pixels = dn()
    path = write_geotiff(tmp_path / "swapped.tif", pixels, names=("B04", "B03", "B02", "B08"))
    written = by_name(upscale_file(path, tmp_path / "o.tif", ByPosition()))
    for k, band in enumerate(S2_RGBN):
        expected = nearest(pixels[("B04", "B03", "B02", "B08").index(band)]) * (1 + k / 10)
        np.testing.assert_allclose(written[band], np.rint(expected), atol=1)


def test_extra_named_bands_are_left_out(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "five.tif", dn(5), names=(*S2_RGBN, "B11"))
    with rasterio.open(upscale_file(path, tmp_path / "o.tif", Replicate())) as out:
        assert out.descriptions == S2_RGBN


def test_names_in_the_file_name_count_as_for_evaluate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_geotiff(tmp_path / "S2A_T33UUB_10m_B02_B03_B04_B08.tif", dn(), names=UNNAMED)
    with RasterReader(path) as reader:
        assert reader.meta.band_names == _inspect(path, None).bands == S2_RGBN
    with caplog.at_level(logging.WARNING):
        upscale_file(path, tmp_path / "o.tif", Replicate(), bands=["B04", "B03", "B02", "B08"])
    assert "no names" not in caplog.text


def test_unnamed_bands_are_assumed_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_geotiff(tmp_path / "scene.tif", dn(), names=UNNAMED)
    with caplog.at_level(logging.WARNING):
        upscale_file(path, tmp_path / "o.tif", Replicate(), tile_size=8, overlap=2)
    [record] = [r for r in caplog.records if "no names" in r.getMessage()]
    assert record.getMessage() == (
        f"{path}: its bands have no names (no band descriptions, none in the file name); taken as "
        "B02, B03, B04, B08, the bands of model replicate-x4, in file order "
        "(--bands picks others by 1-based index)"
    )


def test_a_band_name_on_an_unnamed_file_suggests_indexes(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_geotiff(tmp_path / "scene.tif", dn(), names=UNNAMED)
    args = [
        "upscale",
        str(path),
        str(tmp_path / "o.tif"),
        "--model",
        str(tiny_model_dir),
        "--bands",
        "B04",
        "B03",
    ]
    assert main([*args, "B02", "B08"]) == 2
    err = capsys.readouterr().err
    assert "[None, None, None, None]" not in err
    assert "its 4 bands have no names" in err and "select them by 1-based index, e.g. --bands 1 2 3 4" in err


def test_arrays_name_their_bands_by_rioxarray_long_name(tmp_path: Path) -> None:
    pixels = dn()
    path = write_geotiff(tmp_path / "swapped.tif", pixels, names=("B04", "B03", "B02", "B08"))
    sr = satsr.upscale_dataarray(rioxarray.open_rasterio(path), ByPosition())
    np.testing.assert_allclose(sr.sel(band="B02").values, nearest(pixels[2] / 10000), rtol=1e-6)  # type: ignore[union-attr]
    # rioxarray writes long_name as the band descriptions: it was the input's order, B04 B03 B02 B08.
    sr.rio.to_raster(tmp_path / "sr.tif")  # type: ignore[union-attr]
    with rasterio.open(tmp_path / "sr.tif") as written:
        assert written.descriptions == S2_RGBN


@pytest.mark.skipif(not DSEN2_10M.exists(), reason="needs ../shared/data/s2/dsen2_l1c")
def test_real_dsen2_file_is_named_by_its_file_name() -> None:
    with RasterReader(DSEN2_10M) as reader:
        assert reader.meta.band_names == S2_RGBN and reader.named
