"""Reports (JSON + Markdown + PNG strip) and RGB quick-looks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from satsr.evaluation.quicklook import stretch_limits, to_quicklook_rgb
from satsr.evaluation.report import (
    LABEL_BAND_PX,
    MIN_PANEL_PX,
    PANEL_GAP_PX,
    markdown_table,
    render_crops,
    write_report,
)

HR_SIZE, SCALE, BANDS = 64, 4, 4


@pytest.fixture
def crops() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    hr = 0.05 + 0.3 * rng.random((BANDS, HR_SIZE, HR_SIZE))
    lr = hr.reshape(BANDS, HR_SIZE // SCALE, SCALE, HR_SIZE // SCALE, SCALE).mean(axis=(2, 4))
    # deliberately out of display order: LR must come first, HR last
    return {"HR": hr, "bicubic": hr * 0.9, "LR": lr, "fast-cnn": hr * 1.05}


@pytest.fixture
def results() -> dict[str, dict[str, float]]:
    return {
        "bicubic": {"psnr": 30.123456, "ssim": 0.81},
        "fast-cnn": {"psnr": math.inf, "ssim": 0.9, "lpips": 0.12},
    }


def test_write_report_writes_json_markdown_and_png(
    tmp_path: Path, results: dict[str, dict[str, float]], crops: dict[str, np.ndarray]
) -> None:
    report = write_report(results, crops, tmp_path / "out", "Test run")
    assert report == tmp_path / "out" / "report.md"
    text = report.read_text()
    assert text.startswith("# Test run")
    assert "| method | psnr | ssim | lpips |" in text
    assert "| bicubic | 30.12 | 0.81 | – |" in text
    assert "| fast-cnn | inf | 0.9 | 0.12 |" in text
    assert "![crops](crops.png)" in text
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["title"] == "Test run"
    assert saved["results"]["bicubic"]["psnr"] == pytest.approx(30.123456)
    assert saved["results"]["fast-cnn"]["psnr"] is None  # JSON has no inf
    assert Image.open(tmp_path / "out" / "crops.png").mode == "RGB"


def test_write_report_without_crops(tmp_path: Path, results: dict[str, dict[str, float]]) -> None:
    report = write_report(results, None, tmp_path, "No crops")
    assert "crops.png" not in report.read_text()
    assert not (tmp_path / "crops.png").exists()


def test_markdown_table_has_one_row_per_method(results: dict[str, dict[str, float]]) -> None:
    lines = markdown_table(results).splitlines()
    assert len(lines) == 2 + len(results)


def test_crop_strip_puts_lr_first_and_hr_last_at_one_size(crops: dict[str, np.ndarray]) -> None:
    strip = np.asarray(render_crops(crops))
    zoom = MIN_PANEL_PX // HR_SIZE
    panel = HR_SIZE * zoom
    assert strip.shape == (panel + LABEL_BAND_PX, len(crops) * panel + (len(crops) - 1) * PANEL_GAP_PX, 3)
    lr_panel = strip[LABEL_BAND_PX:, :panel]
    # the LR is shown with nearest-neighbour blocks of SCALE * zoom pixels
    block = SCALE * zoom
    assert (lr_panel[:block, :block] == lr_panel[0, 0]).all()
    hr_panel = strip[LABEL_BAND_PX:, -panel:]
    expected_hr = to_quicklook_rgb(crops["HR"]).repeat(zoom, axis=0).repeat(zoom, axis=1)
    np.testing.assert_array_equal(hr_panel, expected_hr)
    # labels are drawn: the label band is not blank
    assert (strip[:LABEL_BAND_PX] < 255).any()


def test_quicklook_stretches_to_full_range() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((4, 32, 32)) * 0.3
    rgb = to_quicklook_rgb(x)
    assert rgb.shape == (32, 32, 3)
    assert rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255
    # channel order: red = band index 2 of B02, B03, B04, B08
    x_red_bright = x.copy()
    x_red_bright[2] = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    red = to_quicklook_rgb(x_red_bright)[..., 0]
    assert red[0, 0] == 0 and red[-1, -1] == 255


def test_quicklook_shared_limits_and_nodata() -> None:
    x = np.full((4, 8, 8), 0.2)
    x[:, 0, 0] = np.nan
    limits = (np.zeros(3), np.full(3, 0.4))
    rgb = to_quicklook_rgb(x, limits=limits)
    assert (rgb[0, 0] == 0).all()  # nodata shown black
    assert (rgb[1:, 1:] == 128).all()  # 0.2 of a 0-0.4 stretch -> mid grey
    low, high = stretch_limits(np.linspace(0, 1, 4 * 101).reshape(4, 1, 101), stretch=(0, 100))
    np.testing.assert_allclose(low, [2 / 4, 1 / 4, 0.0], atol=0.01)
    np.testing.assert_allclose(high, [3 / 4, 2 / 4, 1 / 4], atol=0.01)


def test_quicklook_validates_inputs() -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_quicklook_rgb(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="rgb"):
        to_quicklook_rgb(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="stretch"):
        to_quicklook_rgb(np.zeros((4, 8, 8)), stretch=(98, 2))


def test_long_labels_wrap_inside_their_panel_instead_of_overwriting_the_next() -> None:
    crop = np.full((4, 32, 32), 0.1, np.float32)
    short = render_crops({"a": crop, "b": crop})
    long = render_crops(
        {"a model with a long name (10 steps, mean of 4, no LR consistency)": crop, "b": crop}
    )
    assert long.width == short.width and long.height > short.height  # more label lines, same panels
