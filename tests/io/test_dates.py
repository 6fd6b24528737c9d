"""STAC ``datetime`` is the acquisition time, with where it came from; the processing time is its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from tests.conftest import Replicate, revisits, write_geotiff
from tests.io.test_safe import make_safe
from tests.io.test_stac_input import make_item

from satsr.cli import main
from satsr.io.dates import acquisition_time, date_in_name
from satsr.io.stac import stac_path
from satsr.pipelines import upscale_file

DSEN2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "s2" / "dsen2_l1c"


def dn() -> np.ndarray:
    return np.random.default_rng(0).integers(900, 3000, (4, 12, 16)).astype(np.uint16)


def props(out: Path) -> dict:
    return json.loads(stac_path(out).read_text())["properties"]


def test_a_date_and_time_in_the_file_name_is_the_acquisition_time(tmp_path: Path) -> None:
    name = "S2A_MSIL1C_20170527T102031_N0205_R065_T33UUB_20170527T102301.tif"
    out = upscale_file(write_geotiff(tmp_path / name, dn()), tmp_path / "o.tif", Replicate())
    p = props(out)
    assert p["datetime"] == "2017-05-27T10:20:31Z" and p["satsr:datetime_source"] == "acquisition"
    assert p["satsr:datetime_from"] == f"file name {name}"
    assert p["created"] == p["processing:datetime"] != p["datetime"]  # the processing time, on its own
    with rasterio.open(out) as sr:
        assert sr.tags()["ACQUISITION_DATE"] == "2017-05-27T10:20:31Z"


def test_a_date_alone_gives_the_day(tmp_path: Path) -> None:
    out = upscale_file(write_geotiff(tmp_path / "S2A_MSIL1C_20170527_T33UUB.tif", dn()), tmp_path / "o.tif",
                       Replicate())  # fmt: skip
    p = props(out)
    assert p["datetime"] == p["start_datetime"] == "2017-05-27T00:00:00Z"
    assert p["end_datetime"] == "2017-05-27T23:59:59Z"


def test_a_tiff_datetime_is_when_the_file_was_made_not_acquired(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "scene.tif", dn())
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(TIFFTAG_DATETIME="2024:01:02 03:04:05")
    p = props(upscale_file(path, tmp_path / "o.tif", Replicate()))
    assert p["satsr:datetime_source"] == "processing" and p["datetime"] == p["created"]
    assert "no acquisition time" in p["satsr:datetime_from"]


def test_product_and_item_metadata_are_named_as_the_source(tmp_path: Path) -> None:
    safe = make_safe(tmp_path, dn()[:, :12, :16])
    p = props(upscale_file(safe, tmp_path / "safe.tif", Replicate()))
    assert p["datetime"] == "2022-03-04T10:20:31.024000Z"
    assert (
        p["satsr:datetime_from"] == f"ACQUISITION_DATE tag (SAFE metadata PRODUCT_START_TIME of {safe.name})"
    )
    folder = tmp_path / "item"
    folder.mkdir()
    p = props(upscale_file(make_item(folder, dn()), tmp_path / "item.tif", Replicate()))
    assert p["datetime"] == "2023-07-01T10:00:00Z"
    assert p["satsr:datetime_from"] == "ACQUISITION_DATE tag (STAC Item item.json datetime)"


def test_fuse_dates_its_item_by_the_anchor_it_keeps_and_derives_it_from_every_input(
    tmp_path: Path,
    fusion_model_dir: Path,
) -> None:
    """The anchored fusion keeps its anchor's radiometry, so it carries its anchor's acquisition time, even
    when the target date asked for is a day no input was acquired on (that date is tagged on its own)."""
    paths = revisits(tmp_path)
    out = tmp_path / "fused.tif"
    args = ["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir), "--steps", "1"]
    assert main(args) == 0
    item = json.loads(stac_path(out).read_text())
    p = item["properties"]
    assert p["datetime"] == "2022-03-15T00:00:00Z" and p["end_datetime"] == "2022-03-15T23:59:59Z"
    assert p["satsr:datetime_from"] == (
        "fusion anchor S2_20220315.tif, the input nearest the latest date (file name S2_20220315.tif)"
    )
    assert [link["href"] for link in item["links"] if link["rel"] == "derived_from"] == [
        str(path.resolve()) for path in paths
    ]
    assert main([*args, "--overwrite", "--target-date", "2022-03-20"]) == 0
    p = props(out)
    assert p["datetime"] == "2022-03-15T00:00:00Z" and p["satsr:datetime_from"] == (
        "fusion anchor S2_20220315.tif, the input nearest the --target-date (file name S2_20220315.tif)"
    )
    with rasterio.open(out) as src:
        assert src.tags()["SATSR_TARGET_DATE"] == "2022-03-20"
        assert src.tags()["ACQUISITION_DATE"].startswith("2022-03-15")
    assert main([*args, "--overwrite", "--target-date", "2022-03-02"]) == 0
    assert props(out)["datetime"] == "2022-03-01T00:00:00Z"  # the input nearest that date


@pytest.mark.parametrize(
    ("name", "expected"),
    [("S2B_MSIL2A_20170924T93021_41_29", "2017-09-24T00:00:00Z"),
     ("x_2019-06-30.tif", "2019-06-30T00:00:00Z"),
     ("s2_l1c_sample_256.tif", None), ("tile_99999999.tif", None)],
)  # fmt: skip
def test_dates_in_names(name: str, expected: str | None) -> None:
    found = date_in_name(name)
    assert (found.rfc3339() if found else None) == expected


@pytest.mark.skipif(not DSEN2.exists(), reason="needs ../shared/data/s2/dsen2_l1c")
def test_real_dsen2_scene_is_dated_by_its_name() -> None:
    path = DSEN2 / "S2A_MSIL1C_20170527_T33UUB_10m_B02_B03_B04_B08.tif"
    with rasterio.open(path) as src:
        acquired = acquisition_time(src.tags(), path.name)
    assert acquired is not None and acquired.rfc3339() == "2017-05-27T00:00:00Z" and acquired.date_only
