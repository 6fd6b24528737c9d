"""Folder batches: --keep-going goes on past bad files with a summary and exit 1; a rerun continues."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from satsr.cli import EXIT_ERROR, EXIT_SOME_FAILED, main


@pytest.fixture
def folder(tmp_path: Path, s2_tif: Path) -> Path:
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(s2_tif, scenes / "a.tif")
    (scenes / "b.tif").write_bytes(b"not a raster")
    shutil.copy(s2_tif, scenes / "c.tif")
    return scenes


def upscale(folder: Path, out: Path, model: Path, *extra: str) -> int:
    return main(["upscale", str(folder), str(out), "--model", str(model), *extra])


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("satsr: tiles")]


def test_a_bad_file_stops_the_batch_and_says_how_to_go_on(
    folder: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert upscale(folder, out, tiny_model_dir) == EXIT_ERROR
    lines = errors(capsys.readouterr().err)
    assert lines[0].startswith(f"satsr: error: {folder / 'b.tif'}: not a readable raster")
    assert lines[1] == (
        "satsr: stopped at b.tif (1 of 3 files done before it); --keep-going goes on past files that fail"
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.tif"]


def test_keep_going_processes_the_others_lists_the_failures_and_exits_1(
    folder: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, looks = tmp_path / "out", tmp_path / "looks"
    assert upscale(folder, out, tiny_model_dir, "--keep-going", "--quicklook", str(looks)) == EXIT_SOME_FAILED
    captured = capsys.readouterr()
    assert errors(captured.err)[-1] == "satsr: 1 of 3 files failed: b.tif"
    assert captured.out.split() == [str(out / "a.tif"), str(out / "c.tif")]
    assert sorted(p.name for p in looks.iterdir()) == [
        "a.png",
        "c.png",
    ]  # --quicklook was ignored for folders
    # The same command again continues: the finished files are skipped, the bad one fails again.
    assert upscale(folder, out, tiny_model_dir, "--keep-going") == EXIT_SOME_FAILED
    lines = errors(capsys.readouterr().err)
    assert f"satsr: {out / 'a.tif'} exists (done before), skipped; --overwrite replaces it" in lines
    assert lines[-1] == "satsr: 1 of 3 files failed: b.tif"
