"""Ctrl-C: one line saying what was kept and that the same command resumes, exit 130; a rerun with
other options says that it starts afresh and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from satsr.cli import EXIT_INTERRUPTED, main
from tests.conftest import DiesAt, NoisyReplicate

JOB = ["--tile-size", "32", "--overlap", "8", "--batch-size", "2"]


def run(argv: list[str]) -> int | str:
    try:
        return main(argv)
    except KeyboardInterrupt:
        return "KeyboardInterrupt escaped"


def messages(err: str) -> list[str]:
    """stderr without the progress lines."""
    return [line for line in err.splitlines() if not line.startswith("satsr: tiles")]


def test_ctrl_c_prints_one_line_and_the_same_command_resumes(
    smooth_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.tif"
    argv = ["upscale", str(smooth_tif), str(out), *JOB]
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: DiesAt(3, "raise"))
    assert run(argv) == EXIT_INTERRUPTED
    [line] = messages(capsys.readouterr().err)
    assert line == (
        f"satsr: interrupted: {out} is not finished; its progress is kept in .o.tif.part, .o.tif.state.npz "
        "beside it: run the same command again to resume (delete them to start afresh)"
    )
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: NoisyReplicate())
    assert run(argv) == 0
    assert f"satsr: {out}: resuming an interrupted run" in messages(capsys.readouterr().err)
    with rasterio.open(out) as dst:
        assert np.isfinite(dst.read()).all()


def test_a_rerun_with_other_options_says_it_starts_afresh(
    smooth_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.tif"
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: DiesAt(3, "raise"))
    assert run(["upscale", str(smooth_tif), str(out), *JOB]) == EXIT_INTERRUPTED
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: NoisyReplicate())
    capsys.readouterr()
    assert run(["upscale", str(smooth_tif), str(out), *JOB, "--seed", "9"]) == 0
    assert (
        f"satsr: {out}: an interrupted run of it used other options (seed 0 -> 9); "
        "starting afresh, its progress is discarded"
    ) in messages(capsys.readouterr().err)


def test_ctrl_c_before_any_progress_leaves_nothing(
    smooth_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.tif"
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: DiesAt(1, "raise"))
    assert run(["upscale", str(smooth_tif), str(out), *JOB]) == EXIT_INTERRUPTED
    assert messages(capsys.readouterr().err) == [
        f"satsr: interrupted: {out} was not written (no row of tiles had finished; nothing kept)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smooth.tif"]


def test_a_run_with_other_options_stopped_before_any_row_leaves_no_stale_progress(
    smooth_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run A stops after some rows; run B (another seed) starts afresh and stops before any row; A again
    must not take A's old progress onto B's temporary file (it once finished with holes where B had not
    written): it starts afresh and its pixels equal an uninterrupted run's."""
    reference, out = tmp_path / "reference.tif", tmp_path / "o.tif"
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: NoisyReplicate())
    assert run(["upscale", str(smooth_tif), str(reference), *JOB]) == 0
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: DiesAt(5, "raise"))
    assert run(["upscale", str(smooth_tif), str(out), *JOB]) == EXIT_INTERRUPTED
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: DiesAt(1, "raise"))
    capsys.readouterr()
    assert run(["upscale", str(smooth_tif), str(out), *JOB, "--seed", "9"]) == EXIT_INTERRUPTED
    assert messages(capsys.readouterr().err)[-1] == (
        f"satsr: interrupted: {out} was not written (no row of tiles had finished; nothing kept)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.json", "reference.tif", "smooth.tif"]
    monkeypatch.setattr("satsr.models.registry.load", lambda *a, **k: NoisyReplicate())
    assert run(["upscale", str(smooth_tif), str(out), *JOB]) == 0
    with rasterio.open(reference) as ref, rasterio.open(out) as dst:
        np.testing.assert_array_equal(dst.read(), ref.read())
