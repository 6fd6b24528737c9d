"""Quick-looks show true colour whatever the band order: red stays red for RGB pictures and S2 bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from satsr.evaluation.report import LABEL_BAND_PX
from satsr.io.bands import rgb_channels
from satsr.pipelines import upscale_file
from tests.conftest import RGB, NearestRGB, Replicate, write_geotiff


def red_field(channels: int, red: int) -> np.ndarray:
    """A picture that is red on its right half: the red band steps up there, the others ramp top to
    bottom (so each band's contrast stretch spans a range, and they average mid-grey on either half)."""
    ramp = np.tile(np.linspace(20, 60, 12)[:, None], (1, 16))
    dn = np.stack([ramp] * channels).astype(np.uint16)
    dn[red] = 30
    dn[red, :, 8:] = 200
    return dn


def right_half_colour(png: Path) -> np.ndarray:
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    panel = pixels[LABEL_BAND_PX + 2 :, : pixels.shape[1] // 2]  # the input panel, below its label
    return panel[:, panel.shape[1] * 3 // 4 :].reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("names", [RGB, (None, None, None)], ids=["described", "no descriptions"])
def test_a_3_band_rgb_picture_shows_red_as_red(tmp_path: Path, names: tuple) -> None:
    src = write_geotiff(tmp_path / "rgb.tif", red_field(3, red=0).astype(np.uint8), names=names)
    png = tmp_path / "look.png"
    upscale_file(src, tmp_path / "o.tif", NearestRGB(), quicklook=png)
    r, g, b = right_half_colour(png)
    assert r > 200 and g < 160 and b < 160  # it was blue: red and blue were swapped


def test_sentinel_2_bands_still_show_b04_as_red(tmp_path: Path) -> None:
    src = write_geotiff(tmp_path / "s2.tif", red_field(4, red=2))  # B02 B03 B04 B08: B04 is index 2
    png = tmp_path / "look.png"
    upscale_file(src, tmp_path / "o.tif", Replicate(), quicklook=png)
    r, g, b = right_half_colour(png)
    assert r > 200 and g < 160 and b < 160


def test_rgb_channels_by_name() -> None:
    assert rgb_channels(("B02", "B03", "B04", "B08")) == (2, 1, 0)
    assert rgb_channels(("red", "green", "blue")) == (0, 1, 2)
    assert rgb_channels(("B", "G", "R")) == (2, 1, 0)
    assert rgb_channels(("B08", "B11", "B12")) is None


def panel_pixels(png: Path, panel: int) -> np.ndarray:
    """(H, W, 3) pixels of panel 0 (input) or 1 (output) of a two-panel quick-look, below the labels."""
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    half = pixels.shape[1] // 2
    return pixels[LABEL_BAND_PX + 2 :, half * panel + 8 : half * panel + half - 8]  # off the gap


def test_a_band_that_is_nodata_alone_does_not_blacken_a_valid_pixel(tmp_path: Path) -> None:
    """The nodata rule in pictures: an 8-bit picture with nodata 255 whose right half is saturated in red
    only (valid pixels: the dataset mask keeps them) shows bright there, not black as it did; its
    bottom rows, 255 in every band (nodata), stay black."""
    dn = np.full((3, 12, 16), 90, dtype=np.uint8)
    dn[:, :, :8] = np.linspace(40, 140, 8).astype(np.uint8)  # contrast for the stretch
    dn[0, :, 8:] = 255  # red saturated: nodata in that band alone
    dn[:, 10:] = 255  # nodata in every band
    src = write_geotiff(tmp_path / "rgb.tif", dn, nodata=255, names=RGB)
    png = tmp_path / "look.png"
    upscale_file(src, tmp_path / "o.tif", NearestRGB(), quicklook=png)
    for panel in (0, 1):
        pixels = panel_pixels(png, panel)
        rows = pixels.shape[0]
        saturated = pixels[: rows * 9 // 12, pixels.shape[1] * 5 // 8 :]
        assert (saturated.sum(axis=-1) > 0).all(), f"panel {panel}: valid pixels shown black"
        assert (pixels[rows * 11 // 12 :] == 0).all(), f"panel {panel}: nodata pixels not black"
