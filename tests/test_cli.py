import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import satsr
from satsr.cli import main
from satsr.io.bands import S2_RGBN
from satsr.models.registry import Upscaler
from tests.conftest import write_geotiff


def run(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_upscale_writes_georeferenced_output(s2_tif: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr.tif"
    assert run("upscale", s2_tif, out, "--model", tiny_model_dir, "--tile-size", "16", "--overlap", "4") == 0
    with rasterio.open(s2_tif) as a, rasterio.open(out) as b:
        assert (b.width, b.height) == (4 * a.width, 4 * a.height)
        np.testing.assert_allclose(tuple(b.bounds), tuple(a.bounds))
        assert b.crs == a.crs and b.dtypes[0] == "uint16"
        assert b.tags()["SATSR_MODEL"] == "tiny-model"


def test_api_matches_cli(s2_tif: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    run("upscale", s2_tif, tmp_path / "cli.tif", "--model", tiny_model_dir)
    satsr.upscale_file(s2_tif, tmp_path / "api.tif", model=tiny_model_dir)
    with rasterio.open(tmp_path / "cli.tif") as a, rasterio.open(tmp_path / "api.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_nodata_propagates_to_the_output_footprint(
    tmp_path: Path, s2_tif: Path, tiny_model_dir: Path
) -> None:
    with rasterio.open(s2_tif) as src:
        dn = src.read()
    dn[:, 10:14, 20:25] = 0
    src_path = write_geotiff(tmp_path / "holes.tif", dn, nodata=0)
    out = tmp_path / "o.tif"
    assert run("upscale", src_path, out, "--model", tiny_model_dir) == 0
    with rasterio.open(out) as b:
        sr = b.read()
    assert b.nodata == 0
    assert (sr[:, 40:56, 80:100] == 0).all()
    assert (sr[:, :40] > 0).all() and (sr[:, 56:] > 0).all()


def test_folder_input_keeps_file_names(s2_tif: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    assert run("upscale", s2_tif.parent, out_dir, "--model", tiny_model_dir) == 0
    assert (out_dir / "scene.tif").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--scale", "3"], "supports scale 4 only"),
        (["--bands", "B02", "B03"], "needs 4 bands"),
    ],
)
def test_bad_requests_fail_cleanly(
    s2_tif: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = ["upscale", str(s2_tif), str(tmp_path / "x.tif"), "--model", str(tiny_model_dir), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()


def test_missing_input_and_existing_output(
    s2_tif: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("upscale", tmp_path / "nope.tif", tmp_path / "o.tif", "--model", tiny_model_dir) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "o.tif").write_bytes(b"keep")
    assert run("upscale", s2_tif, tmp_path / "o.tif", "--model", tiny_model_dir) == 2
    assert "output exists" in capsys.readouterr().err
    assert (tmp_path / "o.tif").read_bytes() == b"keep"


def test_wrong_band_count_through_the_api_names_the_bands(tiny_model_dir: Path) -> None:
    model = satsr.load(tiny_model_dir)
    with pytest.raises(ValueError, match="expects 4 bands"):
        model(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model(np.full((4, 8, 8), np.nan, np.float32))
    assert model(np.zeros((4, 8, 8), np.float32)).shape == (4, 32, 32)


def test_quicklook_png_shows_input_and_output(s2_tif: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "look.png"
    assert run("upscale", s2_tif, tmp_path / "o.tif", "--model", tiny_model_dir, "--quicklook", png) == 0
    with Image.open(png) as image:
        assert image.width > 2 * 4 * 52 and image.height >= 4 * 40


class NearestX4(Upscaler):
    """Pixel replication x4 that records the mean reflectance it was given."""

    def __init__(self) -> None:
        super().__init__("nearest-x4", torch.nn.Identity(), 4, S2_RGBN, "test model")
        self.means: list[float] = []

    def __call__(self, lr: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        self.means.append(float(lr.mean()))
        return np.repeat(np.repeat(np.asarray(lr), 4, axis=-2), 4, axis=-1)


def test_processing_baseline_offset_is_applied_and_dn_convention_kept(s2_tif: Path, tmp_path: Path) -> None:
    old, new = NearestX4(), NearestX4()
    satsr.upscale_file(s2_tif, tmp_path / "old.tif", model=old, processing_baseline="03.01")
    satsr.upscale_file(s2_tif, tmp_path / "new.tif", model=new, processing_baseline="04.00")
    assert np.mean(old.means) - np.mean(new.means) == pytest.approx(0.1, abs=1e-4)
    with rasterio.open(s2_tif) as src, rasterio.open(tmp_path / "new.tif") as b:
        np.testing.assert_array_equal(b.read()[:, ::4, ::4], src.read())


def test_models_lists_every_bundled_model_with_its_card_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["rgb-continuous", "s2-10band", "s2-rgbn-x4-fast", "s2-rgbn-x4-fusion", "s2-rgbn-x4-ldm"]


def test_evaluate_writes_a_report_with_bicubic_and_the_model(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    for i in range(2):
        dn = 1000 + 500 * np.sin(xx / (5 + i)) * np.cos(yy / 7) + rng.integers(0, 100, (4, 96, 128))
        write_geotiff(tmp_path / f"hr{i}.tif", dn.astype(np.uint16))
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--model",
        tiny_model_dir,
        "--data",
        tmp_path,
        "--output",
        out,
        "--crop",
        "64",
        "--no-fid",
    ]
    assert run(*args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"bicubic", "tiny-model"}
    assert metrics["results"]["tiny-model"]["psnr"] != metrics["results"]["bicubic"]["psnr"]
    assert "| bicubic" in (out / "report.md").read_text()


def test_evaluate_refuses_data_without_the_model_bands(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_geotiff(tmp_path / "rgb.tif", np.ones((3, 64, 64), np.uint16), names=("B02", "B03", "B04"))
    assert run("evaluate", "--model", tiny_model_dir, "--data", tmp_path, "--no-fid") == 2


def test_train_hands_its_arguments_to_lightning(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "fit", "--help"])
    assert exit_info.value.code == 0
    assert "--trainer.max_steps" in capsys.readouterr().out


def test_help_and_version_do_not_import_torch() -> None:
    """``satsr --help`` took 7-9 s, most of it importing torch; parsing help must not import it."""
    code = (
        "import sys\nfrom satsr.cli import main\n"
        "for argv in (['--help'], ['upscale', '--help'], ['fuse', '--help'], ['--version']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch imported: False" in done.stderr
    assert f"satsr {satsr.__version__}" in done.stdout


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "LR tile side, pixels (default: 128)" in text and "(default: s2-rgbn-x4-fast)" in text
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    assert "(default: s2-rgbn-x4-fusion)" in " ".join(capsys.readouterr().out.split())


def test_progress_is_printed_when_stderr_is_not_a_terminal(
    s2_tif: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "upscale",
        s2_tif,
        tmp_path / "o.tif",
        "--model",
        tiny_model_dir,
        "--tile-size",
        "8",
        "--overlap",
        "2",
    ]
    assert run(*args) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "tiles" in line]
    pattern = re.compile(r"^satsr: tiles (\d+)/(\d+) \((\d+)%\), \d+:\d\d:\d\d elapsed, \d+:\d\d:\d\d left$")
    assert 5 <= len(lines) <= 21 and all(pattern.match(line) for line in lines)
    done, total, percent = pattern.match(lines[-1]).groups()  # type: ignore[union-attr]
    assert done == total and percent == "100"


def test_an_output_that_is_a_folder_is_one_clear_error(
    s2_tif: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said 'output exists (pass --overwrite)', and with --overwrite failed in os.replace."""
    folder = tmp_path / "out"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert run("upscale", s2_tif, folder, "--model", tiny_model_dir, *extra) == 2
        assert f"{folder} is a folder: give the output's file name" in capsys.readouterr().err
    assert list(folder.iterdir()) == []
