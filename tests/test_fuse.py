"""satsr fuse: revisits on several grids, dates from names/tags/--dates, cloudy revisits dropped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

from satsr.cli import main
from satsr.io.stac import stac_path
from tests.conftest import revisit_dn as scene
from tests.conftest import revisits
from tests.conftest import write_revisit as write


def test_fusing_one_revisit_writes_what_upscale_writes_with_the_same_seed(
    tmp_path: Path, fusion_model_dir: Path
) -> None:
    """The CLI and the two commands agree: one revisit fused is that revisit upscaled (sample 0 of the same
    seed, tiles included, up to float rounding), so a stack's fused image can be compared with its anchor's
    upscaled one."""
    path = revisits(tmp_path)[2]
    model = ["--model", str(fusion_model_dir), "--steps", "2", "--seed", "5"]
    tiles = ["--tile-size", "16", "--overlap", "4"]
    assert main(["fuse", str(path), "--output", str(tmp_path / "fused.tif"), *model, *tiles]) == 0
    assert main(["upscale", str(path), str(tmp_path / "upscaled.tif"), *model, *tiles]) == 0
    with rasterio.open(tmp_path / "fused.tif") as fused, rasterio.open(tmp_path / "upscaled.tif") as upscaled:
        a, b = fused.read().astype(np.int64), upscaled.read().astype(np.int64)
    # upscale runs tiles in batches, fusion one at a time: float rounding moves a few values by one DN
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.02


def test_fuse_reprojects_dates_and_writes_one_image_on_the_first_grid(
    tmp_path: Path, fusion_model_dir: Path
) -> None:
    paths = revisits(tmp_path)
    out = tmp_path / "fused.tif"
    args = ["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir), "--steps", "2"]
    assert main([*args, "--tile-size", "16", "--overlap", "4"]) == 0
    with rasterio.open(out) as sr, rasterio.open(paths[0]) as first:
        assert sr.shape == (96, 96) and sr.crs == first.crs
        np.testing.assert_allclose(tuple(sr.bounds), tuple(first.bounds))
        assert sr.tags()["SATSR_DT_DAYS"] == "14,7,0" and sr.tags()["SATSR_TARGET_DATE"] == "2022-03-15"
        assert sr.tags()["SATSR_FUSION_ANCHOR"] == paths[2].name  # the target date's own input
        fused = sr.read()
    properties = json.loads(stac_path(out).read_text())["properties"]
    assert properties["satsr:revisits"] == 3 and properties["satsr:fusion_anchor"] == paths[2].name
    again = tmp_path / "again.tif"
    assert (
        main([*args[:-2], "--output", str(again), "--steps", "2", "--tile-size", "16", "--overlap", "4"]) == 0
    )
    with rasterio.open(again) as sr:
        np.testing.assert_array_equal(sr.read(), fused)  # --seed (default) fixes the result


def test_a_cloudy_revisit_is_dropped_with_a_message(
    tmp_path: Path, fusion_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = revisits(tmp_path)
    cloudy = scene(3)
    cloudy[:, :20] = 0  # mostly nodata (as a cloud-masked product would be)
    paths[1] = write(tmp_path / "S2_20220308.tif", cloudy)
    out = tmp_path / "fused.tif"
    with caplog.at_level(logging.INFO):
        assert main(["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir),
                     "--steps", "2"]) == 0  # fmt: skip
    assert "S2_20220308.tif: dropped" in caplog.text
    with rasterio.open(out) as sr:
        assert sr.tags()["SATSR_DT_DAYS"] == "14,0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dates", "2022-03-01,2022-03-08"], "3 inputs but 2 dates"),
        (["--dates", "2022-03-01,yesterday,2022-03-15"], "not a date"),
        (["--model", "s2-rgbn-x4-fast"], "cannot fuse revisits"),
        (["--model", "no-such-model"], "unknown model"),
    ],
)
def test_bad_requests_are_one_clear_error(
    tmp_path: Path, fusion_model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    paths = revisits(tmp_path)
    out = tmp_path / "fused.tif"
    args = ["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_undated_revisits_need_dates_for_a_time_aware_model(
    tmp_path: Path, fusion_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write(tmp_path / "a.tif", scene(0)), write(tmp_path / "b.tif", scene(1))
    assert (
        main(["fuse", str(a), str(b), "--output", str(tmp_path / "o.tif"), "--model", str(fusion_model_dir)])
        == 2
    )
    assert "no acquisition date for a.tif, b.tif" in capsys.readouterr().err


def test_pixels_one_revisit_misses_are_seen_through_the_others(
    tmp_path: Path, fusion_model_dir: Path
) -> None:
    paths = revisits(tmp_path)
    holed = scene(1)
    holed[:, 4:10, 4:10] = 0  # nodata in one revisit only (under the --min-clear limit)
    paths[1] = write(tmp_path / "S2_20220308.tif", holed)
    out = tmp_path / "fused.tif"
    assert (
        main(
            ["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir), "--steps", "2"]
        )
        == 0
    )
    with rasterio.open(out) as sr:
        assert (sr.read_masks(1) > 0).all() and sr.tags()["SATSR_DT_DAYS"] == "14,7,0"


def test_small_inputs_run_as_one_window_of_their_own_size(tmp_path: Path, fusion_model_dir: Path) -> None:
    """A 24 px input was padded to the 128 px default tile (3x the time for 48 px inputs)."""
    from satsr.models.registry import load
    from satsr.pipelines import fuse_files

    upscaler = load(fusion_model_dir)
    fuse, sides = upscaler.fuse, []

    def recording(lrs, *args, **kwargs):  # type: ignore[no-untyped-def]
        sides.append(tuple(lrs.shape[-2:]))
        return fuse(lrs, *args, **kwargs)

    upscaler.fuse = recording  # type: ignore[method-assign]
    fuse_files(revisits(tmp_path), tmp_path / "fused.tif", upscaler, steps=1)
    assert sides == [(24, 24)]


def test_fuse_shows_progress_writes_a_quicklook_and_says_ctrl_c_leaves_nothing(
    tmp_path: Path,
    fusion_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = revisits(tmp_path)
    out, png = tmp_path / "fused.tif", tmp_path / "fused.png"
    args = ["fuse", *map(str, paths), "--output", str(out), "--model", str(fusion_model_dir), "--steps", "1"]
    assert main([*args, "--quicklook", str(png), "--tile-size", "16", "--overlap", "4"]) == 0
    assert "satsr: tiles 4/4 (100%)" in capsys.readouterr().err
    assert (
        png.is_file() and json.loads(stac_path(out).read_text())["assets"]["overview"]["href"] == "fused.png"
    )

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr("satsr.pipelines.revisits.fusion_tile_fn", lambda *a, **k: interrupt)
    again = tmp_path / "again.tif"
    assert main([*args[:-4], "--output", str(again), "--model", str(fusion_model_dir)]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"satsr: interrupted: {again} was not written (a fusion does not resume)"
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".again", "again"))]
