"""STAC Items as inputs: band assets by name, raster-extension scaling, local files only, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import Replicate, write_geotiff

from satsr.io.grid import RasterError
from satsr.io.raster import RasterReader, read_raster
from satsr.io.stac import stac_path
from satsr.pipelines import upscale_file

KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}


def make_item(root: Path, dn: np.ndarray, href_of=None, scale: bool = True) -> Path:  # type: ignore[no-untyped-def]
    assets = {}
    for k, (band, common) in enumerate(KEYS.items()):
        write_geotiff(root / f"{band}.tif", dn[k : k + 1], names=(band,))
        asset = {"href": (href_of or (lambda b: f"{b}.tif"))(band), "roles": ["data"],
                 "eo:bands": [{"name": band, "common_name": common}]}  # fmt: skip
        if scale:
            asset["raster:bands"] = [{"scale": 0.0001, "offset": -0.1}]
        assets[common] = asset  # keys by common name: bands are found through eo:bands
    assets["thumbnail"] = {"href": "thumb.png", "roles": ["thumbnail"]}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None,
            "properties": {"datetime": "2023-07-01T10:00:00Z"}, "links": [], "assets": assets}  # fmt: skip
    path = root / "item.json"
    path.write_text(json.dumps(item))
    return path


@pytest.fixture
def dn() -> np.ndarray:
    return np.random.default_rng(1).integers(1200, 5000, (4, 20, 24)).astype(np.uint16)


def test_item_bands_scaling_and_date(tmp_path: Path, dn: np.ndarray) -> None:
    item = make_item(tmp_path, dn)
    reflectance, valid, meta = read_raster(item)
    assert meta.band_names == ("B02", "B03", "B04", "B08") and valid.all()
    np.testing.assert_allclose(reflectance, dn * 0.0001 - 0.1, atol=1e-6)
    with RasterReader(item, bands=["nir", "red"]) as reader:
        assert reader.meta.band_names == ("B08", "B04")
        assert reader.tags()["ACQUISITION_DATE"] == "2023-07-01T10:00:00Z"


def test_upscaled_item_keeps_dn_and_records_the_date(tmp_path: Path, dn: np.ndarray) -> None:
    out = upscale_file(make_item(tmp_path, dn), tmp_path / "sr.tif", Replicate())
    assert json.loads(stac_path(out).read_text())["properties"]["datetime"] == "2023-07-01T10:00:00Z"
    reflectance, _, _ = read_raster(out)
    np.testing.assert_allclose(reflectance[:, ::4, ::4], dn * 0.0001 - 0.1, atol=1e-6)


@pytest.mark.parametrize(
    ("href_of", "message"),
    [
        (lambda b: "missing.tif" if b == "B03" else f"{b}.tif", r"asset green \(B03\) does not exist"),
        (lambda b: f"https://example.com/{b}.tif", "remote"),
    ],
)
def test_bad_assets_are_one_clear_error(tmp_path: Path, dn: np.ndarray, href_of, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RasterError, match=message):
        upscale_file(make_item(tmp_path, dn, href_of), tmp_path / "sr.tif", Replicate())
    assert not list(tmp_path.glob("sr*"))


def test_not_an_item(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"type": "FeatureCollection"}')
    with pytest.raises(RasterError, match="not a STAC Item"):
        RasterReader(tmp_path / "x.json")
