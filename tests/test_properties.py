"""Property-based tests (hypothesis) of the tiling and the raster I/O, over random raster shapes, dtypes,
nodata values and masks, integer and real scales, tile sizes and overlaps.

Each case checks the exact output grid, that masks map exactly (band by band, from the LR pixel under
each HR pixel's centre), that no valid value is written as nodata, and that an identity-like model (the
LR value under each HR pixel's centre) stays exact through tiling and blending, i.e. seam-free. The
examples are derandomized so that CI runs the same few hundred cases every time
(``SATSR_PROPERTY_EXAMPLES=2000`` runs that many random ones per property instead).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satsr.io.grid import RasterError
from satsr.io.stream import upscale_stream
from satsr.io.tiling import Tile, hr_extent, hr_index, lr_coordinates, lr_pixels
from satsr.io.writer import FLOAT_NODATA_STEP, output_nodata
from satsr.models.registry import Upscaler
from satsr.pipelines import upscale_file
from tests.conftest import write_geotiff

#: Cases per property in CI (derandomized); ``SATSR_PROPERTY_EXAMPLES=N`` runs N random ones instead.
CI_EXAMPLES = 150
_EXAMPLES = os.environ.get("SATSR_PROPERTY_EXAMPLES")
PROPERTY = settings(
    max_examples=int(_EXAMPLES or CI_EXAMPLES), deadline=None, derandomize=_EXAMPLES is None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
DTYPES = ("uint8", "uint16", "int16", "float32")
BANDS = ("B02", "B03", "B04")
#: LR pixels: far below any HR pixel's distance to an LR border, far above float32 rounding of a coordinate.
BORDER_TOLERANCE = 1e-4


@st.composite
def tilings(draw: st.DrawFn) -> tuple[int, int, float, int, int, int]:
    """(height, width, scale, tile size, overlap, batch size); scales integer or real in [1, 4]."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    scale = draw(st.one_of(st.integers(1, 4).map(float), st.floats(1.0, 4.0).map(lambda s: round(s, 2))))
    tile = draw(st.integers(2, 24))
    return height, width, scale, tile, draw(st.integers(0, tile - 1)), draw(st.integers(1, 4))


def field(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A smooth function of LR coordinates: what an ideal model returns at any point."""
    return (np.sin(rows[:, None] / 3.0) + np.cos(cols[None, :] / 4.0)).astype(np.float32)


@PROPERTY
@given(tilings(), st.data())
def test_streamed_tiling_writes_every_pixel_once_and_leaves_no_seam(
    case: tuple[int, int, float, int, int, int], data: st.DataObject
) -> None:
    height, width, scale, tile, overlap, batch = case
    out_h, out_w = round(height * scale), round(width * scale)
    window = (min(tile, height), min(tile, width))  # a side shorter than the tile is not padded
    ext_h, ext_w = hr_extent(window[0], height, out_h), hr_extent(window[1], width, out_w)

    def model(lr: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
        assert lr.shape[-2:] == window
        out = []
        for t in tiles:
            rows = lr_coordinates(hr_index(t.row, height, out_h), ext_h, height, out_h, 0)
            cols = lr_coordinates(hr_index(t.col, width, out_w), ext_w, width, out_w, 0)
            out.append(field(rows, cols)[None])
        return np.stack(out)

    def run(region: tuple[int, int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
        result, count = np.full((out_h, out_w), np.nan, np.float32), np.zeros((out_h, out_w), int)

        def write(row: int, col: int, block: np.ndarray) -> None:
            result[row : row + block.shape[1], col : col + block.shape[2]] = block[0]
            count[row : row + block.shape[1], col : col + block.shape[2]] += 1

        upscale_stream(lambda t: np.zeros((1, t.height, t.width), np.float32), write, height, width, model,
                       scale, tile, overlap, batch_size=batch, region=region)  # fmt: skip
        return result, count

    whole, count = run(None)
    assert (count == 1).all()  # the exact output grid, each pixel once
    expected = field((np.arange(out_h) + 0.5) * height / out_h, (np.arange(out_w) + 0.5) * width / out_w)
    np.testing.assert_allclose(whole, expected, atol=2e-6)  # seam-free: blending changes nothing
    y0, x0 = data.draw(st.integers(0, out_h - 1)), data.draw(st.integers(0, out_w - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, out_h)), data.draw(st.integers(x0 + 1, out_w))
    part, _ = run((y0, y1, x0, x1))  # a region (a lazy chunk) is bit for bit the whole run's
    np.testing.assert_array_equal(part[y0:y1, x0:x1], whole[y0:y1, x0:x1])


class Nearest(Upscaler):
    """The LR value under each HR pixel's centre, at an integer or (``continuous``) a real scale;
    ``constant`` instead returns that reflectance everywhere (to force collisions with nodata)."""

    def __init__(self, scale: float, constant: float | None = None) -> None:
        continuous = scale != round(scale)
        super().__init__("nearest", torch.nn.Identity(), round(scale), BANDS, "test", continuous=continuous)
        self.constant = constant

    def __call__(self, lr, seeds=None, steps=None, origins=None, scale=None, coords=None):  # type: ignore[no-untyped-def]
        lr = np.asarray(lr)
        if coords is None:
            out = np.repeat(np.repeat(lr, self.scale, axis=-2), self.scale, axis=-1)
        else:
            # (B, h, w, 2) LR (row, col) relative to each window; a centre on an LR pixel border belongs
            # to the pixel after it (``lr_pixels``), which float rounding can put just before it.
            where = np.asarray(coords, np.float64) + BORDER_TOLERANCE
            rows = np.clip(np.floor(where[..., 0]).astype(int), 0, lr.shape[-2] - 1)
            cols = np.clip(np.floor(where[..., 1]).astype(int), 0, lr.shape[-1] - 1)
            out = np.stack([lr[b][:, rows[b], cols[b]] for b in range(len(lr))])
        return np.full_like(out, self.constant) if self.constant is not None else out


@st.composite
def rasters(draw: st.DrawFn) -> tuple[np.ndarray, float | None]:
    """A 3-band raster of a random dtype with a random nodata value, whole-pixel and single-band holes."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        nodata = draw(st.sampled_from([None, float("nan"), 0.0, -9999.0]))
        values = rng.uniform(-0.05, 1.2, (3, height, width)).astype(dtype)
        values[rng.random(values.shape) < 0.05] = 0.0  # exact zeros: valid values equal to a nodata of 0
    else:
        info = np.iinfo(dtype)
        nodata = draw(st.sampled_from([None, 0, info.max, info.min, int(rng.integers(info.min, info.max))]))
        values = rng.integers(info.min, info.max, (3, height, width), endpoint=True).astype(dtype)
    hole = nodata if nodata is not None else (float("nan") if dtype.kind == "f" else None)
    if hole is not None:
        values[:, rng.random((height, width)) < draw(st.floats(0, 0.5))] = hole  # every band
        values[rng.random(values.shape) < draw(st.floats(0, 0.3))] = hole  # single bands
        if nodata is not None and not np.isnan(nodata):
            # A valid value never equals nodata in the input: move the ones that do (not holes).
            values[(values == nodata) & (rng.random(values.shape) < 0.5)] = values.dtype.type(1)
    return values, nodata


def nodata_of(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where each band is nodata in the input (nodata value, or NaN for floats)."""
    missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    return missing | (values == nodata) if nodata is not None else missing


@PROPERTY
@given(rasters(), st.one_of(st.sampled_from([1.0, 2.0, 3.0]), st.floats(1.0, 3.0).map(lambda s: round(s, 2))),
       st.integers(2, 20), st.data(), st.booleans())  # fmt: skip
def test_file_round_trip_keeps_grid_masks_and_values(
    raster: tuple[np.ndarray, float | None], scale: float, tile: int, data: st.DataObject, collide: bool
) -> None:
    values, nodata = raster
    overlap = data.draw(st.integers(0, tile - 1))
    _, height, width = values.shape
    missing = nodata_of(values, nodata)
    with tempfile.TemporaryDirectory() as folder:
        src = write_geotiff(Path(folder) / "in.tif", values, nodata=nodata, names=BANDS)
        if missing.all():
            with pytest.raises(RasterError, match="every pixel is nodata"):
                upscale_file(
                    src, Path(folder) / "o.tif", Nearest(scale), scale, tile_size=tile, overlap=overlap
                )
            assert sorted(p.name for p in Path(folder).iterdir()) == ["in.tif"]
            return
        constant = None
        if collide:  # a model whose every value would be written as the output's nodata value
            from satsr.io.raster import RasterReader

            with RasterReader(src) as reader:
                out_nodata = output_nodata(reader.meta)
                constant = float(reader.meta.scaling.to_reflectance(np.array(out_nodata)))
            if np.isnan(constant):  # a model giving NaN is refused, not written as holes
                with pytest.raises(ValueError, match=r"model returned \d+ NaN or infinite values"):
                    upscale_file(
                        src,
                        Path(folder) / "o.tif",
                        Nearest(scale, constant),
                        scale,
                        tile_size=tile,
                        overlap=overlap,
                    )
                assert sorted(p.name for p in Path(folder).iterdir()) == ["in.tif"]
                return
        out = upscale_file(
            src, Path(folder) / "o.tif", Nearest(scale, constant), scale, tile_size=tile, overlap=overlap
        )
        with rasterio.open(src) as a, rasterio.open(out) as b:
            written, written_nodata, dataset_mask = b.read(), b.nodata, b.dataset_mask()
            assert (b.height, b.width) == (round(height * scale), round(width * scale))  # the exact grid
            assert b.transform.almost_equals(a.transform * Affine.scale(width / b.width, height / b.height))
            np.testing.assert_allclose(tuple(b.bounds), tuple(a.bounds), atol=1e-6)
    _, out_h, out_w = written.shape
    rows, cols = lr_pixels(0, out_h, height, out_h), lr_pixels(0, out_w, width, out_w)
    hr_missing = missing[:, rows][:, :, cols]
    written_missing = nodata_of(written, written_nodata)
    np.testing.assert_array_equal(written_missing, hr_missing)  # masks map exactly, band by band
    np.testing.assert_array_equal(dataset_mask == 0, hr_missing.all(axis=0))  # rasterio's dataset mask
    valid = ~hr_missing
    if constant is not None:
        assert not (written[valid] == written_nodata).any()  # moved off nodata, by one step only
        step = np.abs(written[valid].astype(np.float64) - written_nodata)
        float_step = 2 * FLOAT_NODATA_STEP * max(1.0, abs(written_nodata))
        assert (step <= (1 if values.dtype.kind != "f" else float_step)).all()
        return
    expected = values[:, rows][:, :, cols]
    collided = valid & (expected == written_nodata)  # only a nodata-less input's 0 DN, written as 1
    assert not (written[valid] == written_nodata).any()
    if values.dtype.kind == "f":
        np.testing.assert_allclose(
            written[valid & ~collided], expected[valid & ~collided], rtol=2e-6, atol=1e-7
        )
    else:
        np.testing.assert_array_equal(written[valid & ~collided], expected[valid & ~collided])
        assert (np.abs(written[collided].astype(int) - int(written_nodata)) == 1).all()


@settings(PROPERTY, max_examples=max(1, PROPERTY.max_examples // 6))  # dask costs ~0.5 s a case
@given(tilings(), st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_a_lazy_dataarray_equals_the_eager_one_for_any_chunking(
    case: tuple[int, int, float, int, int, int], chunk_y: int, chunk_x: int, seed: int
) -> None:
    import xarray as xr

    from satsr.pipelines import upscale_dataarray

    height, width, scale, tile, overlap, batch = case
    values = np.random.default_rng(seed).uniform(0.0, 1.0, (3, height, width)).astype(np.float32)
    values[:, values[0] > 0.9] = np.nan  # whole pixels
    values[1, values[1] < 0.1] = np.nan  # one band
    eager = xr.DataArray(values, dims=("band", "y", "x"), coords={"band": list(BANDS)})
    kwargs = {"scale": scale, "tile_size": tile, "overlap": overlap, "batch_size": batch}
    if np.isnan(values).all():
        with pytest.raises(ValueError, match="every pixel is nodata"):
            upscale_dataarray(eager, Nearest(scale), **kwargs)  # type: ignore[arg-type]
        return
    whole = upscale_dataarray(eager, Nearest(scale), **kwargs)  # type: ignore[arg-type]
    lazy = upscale_dataarray(eager.chunk({"y": chunk_y, "x": chunk_x}), Nearest(scale), **kwargs)  # type: ignore[arg-type]
    assert isinstance(whole, xr.DataArray) and isinstance(lazy, xr.DataArray)
    assert whole.shape == (3, round(height * scale), round(width * scale))
    np.testing.assert_array_equal(lazy.values, whole.values)  # bit for bit, NaN where masked
