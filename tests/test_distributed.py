"""Model calls on a Dask cluster give the pixels of a single-process run; a dead scheduler is one error."""

from pathlib import Path

import numpy as np
import pytest
import rasterio

import satsr
from satsr.cli import main
from satsr.pipelines import distributed, upscale_file

JOB = {"tile_size": 32, "overlap": 8, "batch_size": 2}


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_local_cluster_gives_the_single_process_pixels(smooth_tif: Path, tmp_path: Path) -> None:
    model = satsr.load("s2-rgbn-x4-fast")
    single = upscale_file(smooth_tif, tmp_path / "single.tif", model, **JOB)  # type: ignore[arg-type]
    two = upscale_file(smooth_tif, tmp_path / "two.tif", model, workers=2, **JOB)  # type: ignore[arg-type]
    np.testing.assert_array_equal(read(two), read(single))
    assert model.source == "s2-rgbn-x4-fast"  # what the workers load


def test_a_scheduler_that_does_not_answer_is_one_error_and_no_output(
    smooth_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "sr.tif"
    assert main(["upscale", str(smooth_tif), str(out), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "did not answer" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smooth.tif"]
