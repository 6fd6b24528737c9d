"""upscale_file end to end: streamed tiling through files, sampling, uncertainty, COG, refusals."""

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

import satsr
from satsr.cli import main
from satsr.io.bands import S2_RGBN
from satsr.io.grid import RasterError
from satsr.io.stac import stac_path
from satsr.pipelines import uncertainty_path, upscale_file
from tests.conftest import DiesAt, NoisyReplicate, Replicate, nearest


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_streamed_file_is_exact_across_tile_borders(smooth_tif: Path, tmp_path: Path) -> None:
    """With an identity-like model, blending through windowed reads and writes changes no pixel."""
    out = upscale_file(smooth_tif, tmp_path / "o.tif", Replicate(), tile_size=32, overlap=8, batch_size=3)
    np.testing.assert_array_equal(read(out), nearest(read(smooth_tif)).astype(np.uint16))


def test_samples_write_mean_and_uncertainty_on_the_same_grid(smooth_tif: Path, tmp_path: Path) -> None:
    model = NoisyReplicate()
    out = upscale_file(smooth_tif, tmp_path / "o.tif", model, samples=4, steps=3, tile_size=32, overlap=8)
    std_path = uncertainty_path(out)
    assert std_path == tmp_path / "o.uncertainty.tif"
    with rasterio.open(out) as sr, rasterio.open(std_path) as std:
        assert std.transform == sr.transform and std.crs == sr.crs and std.shape == sr.shape
        assert std.dtypes[0] == "float32" and std.descriptions == sr.descriptions
        assert sr.tags()["SATSR_SEED"] == "0" and sr.tags()["SATSR_STEPS"] == "3"
        sigma = std.read()
    # Noise of std 0.01 over 4 draws: the sample std is of that order everywhere.
    assert 0.002 < float(np.median(sigma)) < 0.02
    assert all(steps == 3 for _, steps in model.calls)


def test_seed_fixes_samples_and_batching_does_not_change_them(smooth_tif: Path, tmp_path: Path) -> None:
    def run(name: str, seed: int, batch_size: int) -> np.ndarray:
        path = tmp_path / name
        upscale_file(smooth_tif, path, NoisyReplicate(), samples=2, seed=seed, batch_size=batch_size,
                     tile_size=32, overlap=8)  # fmt: skip
        return np.concatenate([read(path).astype(np.float32), read(uncertainty_path(path))])

    first = run("a.tif", seed=5, batch_size=4)
    np.testing.assert_array_equal(first, run("b.tif", seed=5, batch_size=1))
    assert not np.array_equal(first, run("c.tif", seed=6, batch_size=4))


def test_cog_output_has_overviews_and_the_same_pixels(smooth_tif: Path, tmp_path: Path) -> None:
    plain = upscale_file(smooth_tif, tmp_path / "plain.tif", Replicate(), tile_size=32, overlap=8)
    cog = upscale_file(smooth_tif, tmp_path / "cog.tif", Replicate(), tile_size=32, overlap=8, cog=True)
    with rasterio.open(cog) as src:
        assert src.overviews(1) and src.tags()["SATSR_MODEL"] == "replicate-x4"
        assert src.descriptions == tuple(S2_RGBN) and src.profile["blockxsize"] == 256
    np.testing.assert_array_equal(read(cog), read(plain))
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 2}, "deterministic: --samples > 1"),
        ({"steps": 10}, "deterministic: --steps"),
        ({"samples": 0}, "--samples must be >= 1"),
    ],
)
def test_sampling_options_on_a_deterministic_model_are_refused(
    smooth_tif: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        upscale_file(smooth_tif, tmp_path / "o.tif", Replicate(), **kwargs)
    assert list(tmp_path.iterdir()) == [smooth_tif]


def test_existing_uncertainty_file_is_refused_before_any_work(smooth_tif: Path, tmp_path: Path) -> None:
    uncertainty_path(tmp_path / "o.tif").write_bytes(b"keep")
    with pytest.raises(ValueError, match="output exists"):
        upscale_file(smooth_tif, tmp_path / "o.tif", NoisyReplicate(), samples=2)
    assert not (tmp_path / "o.tif").exists()


def test_failure_mid_scene_leaves_no_output(smooth_tif: Path, tmp_path: Path) -> None:
    class FailsLate(Replicate):
        calls = 0

        def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
            FailsLate.calls += 1
            if FailsLate.calls == 3:
                raise RuntimeError("out of memory")
            return super().__call__(lr)

    with pytest.raises(RuntimeError, match="out of memory"):
        upscale_file(smooth_tif, tmp_path / "o.tif", FailsLate(), tile_size=32, overlap=8, batch_size=1)
    assert list(tmp_path.iterdir()) == [smooth_tif]


def test_cli_seed_and_cog_flags(smooth_tif: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.tif"
    args = ["upscale", smooth_tif, out, "--model", tiny_model_dir, "--seed", "3", "--cog", "--device", "auto"]
    assert main([str(a) for a in args]) == 0
    with rasterio.open(out) as src:
        assert src.tags()["SATSR_SEED"] == "3" and src.overviews(1)


def test_stac_item_records_footprint_grid_and_provenance(smooth_tif: Path, tmp_path: Path) -> None:
    with rasterio.open(smooth_tif, "r+") as src:
        src.update_tags(ACQUISITION_DATE="2021-06-03T10:20:31Z")
    model = NoisyReplicate()
    model.weights_sha256 = "ab" * 32
    out = upscale_file(smooth_tif, tmp_path / "o.tif", model, samples=2, seed=5, quicklook=tmp_path / "o.png")
    item = json.loads(stac_path(out).read_text())
    assert stac_path(out) == tmp_path / "o.json" and item["type"] == "Feature" and item["id"] == "o"
    with rasterio.open(out) as sr:
        assert item["properties"]["proj:epsg"] == 32633 and item["properties"]["proj:shape"] == list(sr.shape)
        assert item["properties"]["proj:transform"] == list(sr.transform)[:6]
        west, south, east, north = transform_bounds(sr.crs, "EPSG:4326", *sr.bounds)
    np.testing.assert_allclose(item["bbox"], [west, south, east, north])
    assert item["geometry"]["coordinates"][0][0] == [west, south]
    props = item["properties"]
    assert props["datetime"] == "2021-06-03T10:20:31Z" and props["satsr:datetime_source"] == "acquisition"
    assert props["satsr:model"] == "replicate-x4" and props["satsr:weights_sha256"] == "ab" * 32
    assert (props["satsr:seed"], props["satsr:samples"], props["satsr:steps"]) == (5, 2, 7)
    assert props["processing:software"] == {"satsr": satsr.__version__}
    assert {k: a["href"] for k, a in item["assets"].items()} == {
        "data": "o.tif", "uncertainty": "o.uncertainty.tif", "overview": "o.png"
    }  # fmt: skip
    assert item["links"][0]["href"] == str(smooth_tif.resolve())


def test_existing_stac_item_is_refused_before_any_work(smooth_tif: Path, tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text("{}")
    with pytest.raises(RasterError, match=r"o\.json: output exists"):
        upscale_file(smooth_tif, tmp_path / "o.tif", Replicate())
    assert not (tmp_path / "o.tif").exists()


JOB = {"samples": 2, "tile_size": 32, "overlap": 8, "batch_size": 2}


def test_killed_job_resumes_to_identical_pixels(smooth_tif: Path, tmp_path: Path) -> None:
    whole = NoisyReplicate()
    ref = upscale_file(smooth_tif, tmp_path / "ref.tif", whole, **JOB)  # type: ignore[arg-type]
    out = tmp_path / "out.tif"
    child = multiprocessing.get_context("fork").Process(
        target=upscale_file, args=(smooth_tif, out, DiesAt(4)), kwargs=JOB
    )
    child.start()
    child.join()
    assert child.exitcode == 3
    assert not out.exists() and not uncertainty_path(out).exists()  # never a partial final file
    assert (tmp_path / ".out.tif.part").exists() and (tmp_path / ".out.tif.state.npz").exists()
    model = NoisyReplicate()
    upscale_file(smooth_tif, out, model, **JOB)  # type: ignore[arg-type]
    assert 0 < sum(n for n, _ in model.calls) < sum(n for n, _ in whole.calls)  # finished rows are not redone
    np.testing.assert_array_equal(read(out), read(ref))
    np.testing.assert_array_equal(read(uncertainty_path(out)), read(uncertainty_path(ref)))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_interrupted_job_resumes_and_a_different_job_starts_afresh(smooth_tif: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        upscale_file(smooth_tif, out, DiesAt(3, "raise"), **JOB)  # type: ignore[arg-type]
    assert (tmp_path / ".out.tif.state.npz").exists()
    model = NoisyReplicate()
    upscale_file(smooth_tif, out, model, **{**JOB, "seed": 9})  # type: ignore[arg-type]
    assert sum(n for n, _ in model.calls) == 2 * 12  # another seed: nothing reused (12 tiles x 2 samples)
    fresh = upscale_file(smooth_tif, tmp_path / "fresh.tif", NoisyReplicate(), **{**JOB, "seed": 9})  # type: ignore[arg-type]
    np.testing.assert_array_equal(read(out), read(fresh))


def test_failed_job_leaves_no_state(smooth_tif: Path, tmp_path: Path) -> None:
    class Broken(NoisyReplicate):
        def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
            if self.calls:
                raise RuntimeError("model failed")
            return super().__call__(lr, seeds, steps, origins)

    with pytest.raises(RuntimeError, match="model failed"):
        upscale_file(smooth_tif, tmp_path / "out.tif", Broken(), **JOB)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == [smooth_tif]


def test_an_input_smaller_than_the_tile_runs_as_one_window_of_its_size(s2_tif: Path, tmp_path: Path) -> None:
    shapes: list[tuple[int, ...]] = []

    class Recording(Replicate):
        def __call__(self, lr, seeds=None, steps=None, origins=None):  # type: ignore[no-untyped-def]
            shapes.append(np.asarray(lr).shape)
            return super().__call__(lr)

    out = upscale_file(s2_tif, tmp_path / "o.tif", Recording())  # 40 x 52 px, default tile 128
    assert shapes == [(1, 4, 40, 52)]  # not padded to a square: the model sees only image pixels
    np.testing.assert_array_equal(read(out), nearest(read(s2_tif)).astype(np.uint16))


def test_streaming_reads_with_a_block_cache_of_megabytes(
    s2_tif: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rasterio takes an integer GDAL_CACHEMAX as bytes: 512 meant no cache at all, and windows that
    overlap decompressed their blocks again (50x slower reads of a pixel-interleaved 20 m file)."""
    from rasterio._env import get_gdal_config

    from satsr.io.raster import RasterReader

    seen: list[int] = []
    read_bands = RasterReader.read_bands

    def spy(self: RasterReader, *args: object, **kwargs: object) -> tuple:
        seen.append(int(get_gdal_config("GDAL_CACHEMAX")))
        return read_bands(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RasterReader, "read_bands", spy)
    upscale_file(s2_tif, tmp_path / "sr.tif", Replicate())
    assert seen and min(seen) >= 64 * 2**20
