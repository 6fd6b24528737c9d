import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satsr.io.stream import UpscaleFn, upscale_stream, upscale_tiled
from satsr.io.tiling import Ramp, Tile, blend_weights, tile_grid

TILE_SIZE = 32
OVERLAP = 8


def _coverage(tiles: list[Tile], height: int, width: int) -> np.ndarray:
    count = np.zeros((height, width), dtype=np.int64)
    for t in tiles:
        assert t.row >= 0 and t.col >= 0
        assert t.row + t.height <= height and t.col + t.width <= width
        count[t.row : t.row + t.height, t.col : t.col + t.width] += 1
    return count


def _nearest(scale: int) -> UpscaleFn:
    def model(batch: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(batch, scale, axis=-2), scale, axis=-1)

    return model


def _bilinear(scale: int) -> UpscaleFn:
    def model(batch: np.ndarray) -> np.ndarray:
        out = F.interpolate(torch.from_numpy(batch), scale_factor=scale, mode="bilinear", align_corners=False)
        return out.numpy()

    return model


def _smooth_image(channels: int, height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.01 * rows + 0.02 * cols + 0.3 * np.sin(2 * np.pi * rows / 50) * np.cos(2 * np.pi * cols / 70)
    return np.stack([base * (c + 1) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize(("height", "width"), [(70, 93), (32, 32), (33, 100), (20, 50), (10, 12), (1, 1)])
def test_grid_covers_every_pixel(height: int, width: int) -> None:
    tiles = tile_grid(height, width, TILE_SIZE, OVERLAP)
    assert (_coverage(tiles, height, width) >= 1).all()
    for t in tiles:
        assert t.height == min(TILE_SIZE, height) and t.width == min(TILE_SIZE, width)


def test_grid_last_window_ends_at_edge_and_strides() -> None:
    tiles = tile_grid(70, 93, TILE_SIZE, OVERLAP)
    rows = sorted({t.row for t in tiles})
    cols = sorted({t.col for t in tiles})
    assert rows == [0, 24, 38]
    assert cols == [0, 24, 48, 61]
    assert len(tiles) == len(rows) * len(cols)


def test_grid_smaller_than_tile_is_whole_image() -> None:
    assert tile_grid(10, 12, TILE_SIZE, OVERLAP) == [Tile(row=0, col=0, height=10, width=12)]


@pytest.mark.parametrize("overlap", [-1, TILE_SIZE, TILE_SIZE + 5])
def test_bad_overlap_raises(overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap must satisfy"):
        tile_grid(64, 64, TILE_SIZE, overlap)


@pytest.mark.parametrize("ramp", ["cosine", "linear"])
def test_weights_positive_and_one_in_interior(ramp: Ramp) -> None:
    scale = 4
    height, width = 70, 93
    for tile in tile_grid(height, width, TILE_SIZE, OVERLAP):
        weights = blend_weights(tile, height, width, scale, OVERLAP, ramp=ramp)
        assert weights.dtype == np.float32
        assert weights.shape == (tile.height * scale, tile.width * scale)
        assert (weights > 0).all() and (weights <= 1).all()
        margin = OVERLAP * scale
        np.testing.assert_array_equal(weights[margin:-margin, margin:-margin], 1.0)


def test_weights_are_one_on_border_sides() -> None:
    scale = 2
    corner = tile_grid(70, 93, TILE_SIZE, OVERLAP)[0]
    weights = blend_weights(corner, 70, 93, scale, OVERLAP)
    # Top-left tile: no ramp on the top rows and left columns, a ramp towards the inner sides.
    np.testing.assert_array_equal(weights[0, : -OVERLAP * scale], 1.0)
    np.testing.assert_array_equal(weights[: -OVERLAP * scale, 0], 1.0)
    assert weights[-1, -1] < weights[-OVERLAP * scale, -OVERLAP * scale] <= 1.0
    assert np.all(np.diff(weights[0, -OVERLAP * scale :]) < 0)


@pytest.mark.parametrize("ramp", ["cosine", "linear"])
def test_nearest_model_tiled_equals_whole(ramp: Ramp) -> None:
    scale = 4
    rng = np.random.default_rng(0)
    image = rng.random((3, 70, 93), dtype=np.float32)
    model = _nearest(scale)
    whole = model(image[None])[0]
    tiled = upscale_tiled(image, model, scale, TILE_SIZE, OVERLAP, batch_size=3, ramp=ramp)
    assert tiled.shape == (3, 70 * scale, 93 * scale) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


def test_bilinear_model_leaves_no_seam() -> None:
    scale = 2
    image = _smooth_image(2, 70, 93)
    model = _bilinear(scale)
    whole = model(image[None])[0]
    tiled = upscale_tiled(image, model, scale, TILE_SIZE, OVERLAP, batch_size=4)
    border = 2 * scale
    diff = np.abs(tiled - whole)[:, border:-border, border:-border]
    assert diff.max() < 1e-3


@pytest.mark.parametrize(("height", "width"), [(10, 12), (20, 50)])
def test_smaller_than_tile_runs_at_its_own_size(height: int, width: int) -> None:
    """A side shorter than the tile is not padded: the model sees only image pixels, so a model that
    normalises over its window (GroupNorm) gives on a small image what it gives on that image alone."""
    scale = 2
    calls: list[tuple[int, ...]] = []
    nearest = _nearest(scale)

    def centred(batch: np.ndarray) -> np.ndarray:  # statistics over the whole window, as GroupNorm
        calls.append(batch.shape)
        return nearest(batch - batch.mean(axis=(-2, -1), keepdims=True))

    image = np.random.default_rng(1).random((2, height, width), dtype=np.float32)
    tiled = upscale_tiled(image, centred, scale, TILE_SIZE, OVERLAP, progress=True)
    windows = {shape[-2:] for shape in calls}
    assert windows == {(min(TILE_SIZE, height), min(TILE_SIZE, width))}
    if height <= TILE_SIZE and width <= TILE_SIZE:  # one window: exactly the image alone
        np.testing.assert_allclose(tiled, centred(image[None])[0], rtol=0, atol=1e-6)


def test_model_with_wrong_output_shape_is_a_clear_error() -> None:
    image = np.zeros((1, 40, 40), dtype=np.float32)
    with pytest.raises(ValueError, match="model returned shape"):
        upscale_tiled(image, _nearest(2), 4, TILE_SIZE, OVERLAP)


def test_stream_writes_every_hr_pixel_once_and_row_by_row() -> None:
    """Blocks arrive final and exactly once; rows above a strip are written before the next strip is read."""
    scale, height, width = 2, 90, 75
    image = _smooth_image(2, height, width)
    written = np.zeros((height * scale, width * scale), dtype=np.int64)
    out = np.zeros((2, height * scale, width * scale), dtype=np.float32)
    events: list[tuple[str, int, int]] = []  # ("read", LR row, -) or ("write", HR row, HR row end)

    def read(t: Tile) -> np.ndarray:
        events.append(("read", t.row, t.row + t.height))
        return image[:, t.row : t.row + t.height, t.col : t.col + t.width]

    def write(row: int, col: int, block: np.ndarray) -> None:
        events.append(("write", row, row + block.shape[1]))
        written[row : row + block.shape[1], col : col + block.shape[2]] += 1
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block

    bilinear = _bilinear(scale)
    upscale_stream(
        read, write, height, width, lambda b, _: bilinear(b), scale, TILE_SIZE, OVERLAP, batch_size=2
    )
    assert (written == 1).all()
    np.testing.assert_allclose(out, upscale_tiled(image, bilinear, scale, TILE_SIZE, OVERLAP), atol=1e-6)
    # Rows above a strip belong to earlier strips only: they are on disk before the strip is read.
    strip_starts = sorted({start for kind, start, _ in events if kind == "read"})
    assert len(strip_starts) > 2
    for current in strip_starts[1:]:
        first_read = next(k for k, e in enumerate(events) if e[0] == "read" and e[1] == current)
        done = written_rows(events[:first_read], height * scale)
        assert done[: current * scale].all(), f"rows above strip {current} not written before it is read"
        assert not done[current * scale :].any()


def written_rows(events: list[tuple[str, int, int]], rows: int) -> np.ndarray:
    covered = np.zeros(rows, dtype=bool)
    for kind, start, end in events:
        if kind == "write":
            covered[start:end] = True
    return covered


def test_stream_passes_tile_positions_and_extra_channels() -> None:
    """A TileFn sees each window's position and may return more channels (e.g. mean and std)."""
    scale = 2
    image = np.ones((1, 40, 60), dtype=np.float32)
    seen: list[Tile] = []

    def model(batch: np.ndarray, tiles: list[Tile]) -> np.ndarray:
        seen.extend(tiles)
        up = _nearest(scale)(batch)
        return np.concatenate([up, 2 * up], axis=1)

    out = np.zeros((2, 80, 120), dtype=np.float32)

    def write(row: int, col: int, block: np.ndarray) -> None:
        out[:, row : row + block.shape[1], col : col + block.shape[2]] = block

    upscale_stream(lambda t: image[:, t.row : t.row + t.height, t.col : t.col + t.width], write, 40, 60,
                   model, scale, TILE_SIZE, OVERLAP, out_channels=2)  # fmt: skip
    assert seen == tile_grid(40, 60, TILE_SIZE, OVERLAP)
    np.testing.assert_allclose(out[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[1], 2.0, atol=1e-6)


@pytest.mark.parametrize("scale", [2.6, 3.4, 1.5])
def test_a_real_scale_streams_the_scene_grid_without_seams(scale: float) -> None:
    """A model that evaluates a smooth function at the LR coordinates of the HR pixel centres it is
    asked for: the blended scene must be that function on the scene's output grid, wherever tiles meet."""
    from satsr.io.tiling import hr_extent, hr_index, lr_coordinates

    height, width, tile, overlap = 37, 50, 16, 6
    out_h, out_w = round(height * scale), round(width * scale)

    def field(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.sin(rows[:, None] / 3.0) + np.cos(cols[None, :] / 4.0)

    def model(batch: np.ndarray, tiles: list[Tile]) -> np.ndarray:
        ext_h, ext_w = hr_extent(tile, height, out_h), hr_extent(tile, width, out_w)
        out = []
        for t in tiles:
            rows = lr_coordinates(hr_index(t.row, height, out_h), ext_h, height, out_h, 0)
            cols = lr_coordinates(hr_index(t.col, width, out_w), ext_w, width, out_w, 0)
            out.append(field(rows, cols)[None].astype(np.float32))
        return np.stack(out)

    result = np.full((1, out_h, out_w), np.nan, np.float32)
    written = np.zeros((out_h, out_w), int)

    def write(row: int, col: int, block: np.ndarray) -> None:
        result[:, row : row + block.shape[1], col : col + block.shape[2]] = block
        written[row : row + block.shape[1], col : col + block.shape[2]] += 1

    upscale_stream(lambda t: np.zeros((1, t.height, t.width), np.float32), write, height, width, model,
                   scale, tile, overlap)  # fmt: skip
    assert (written == 1).all()
    rows = (np.arange(out_h) + 0.5) * height / out_h
    cols = (np.arange(out_w) + 0.5) * width / out_w
    np.testing.assert_allclose(result[0], field(rows, cols), atol=1e-5)


def test_integer_scales_keep_lr_pixel_aligned_windows() -> None:
    from satsr.io.tiling import hr_extent, hr_index

    assert [hr_index(r, 50, 200) for r in (0, 7, 50)] == [0, 28, 200]
    assert hr_extent(16, 50, 200) == 64 and hr_extent(16, 50, 130) == 43  # 16 x 2.6 = 41.6 -> 42 + 1


def test_an_hr_pixel_centred_on_an_lr_border_is_computed_by_the_window_holding_that_pixel() -> None:
    """4 LR -> 7 HR pixels: HR pixel 3's centre is LR 2.0, in LR pixel 2 (``lr_pixels``, where its validity
    comes from); the window of LR pixels 0-1 computed it, from a pixel it does not hold."""
    from satsr.io.tiling import hr_extent, hr_index, lr_pixels

    assert lr_pixels(3, 1, 4, 7)[0] == 2 and hr_index(2, 4, 7) == 3  # it was 4: round(3.5) upwards
    seen: dict[int, int] = {}

    def model(batch: np.ndarray, tiles: list[Tile]) -> np.ndarray:  # each window's HR pixels: its LR column
        return np.stack(
            [np.full((1, hr_extent(1, 1, 2), hr_extent(2, 4, 7)), t.col, np.float32) for t in tiles]
        )

    def write(row: int, col: int, block: np.ndarray) -> None:
        seen.update({col + k: int(v) for k, v in enumerate(block[0, 0])})

    upscale_stream(lambda t: np.zeros((1, 1, t.width), np.float32), write, 1, 4, model, 1.75, 2, 0)
    assert seen == {0: 0, 1: 0, 2: 0, 3: 2, 4: 2, 5: 2, 6: 2}  # HR pixel 3 from the window at LR col 2


def test_a_model_returning_nan_is_a_clear_error() -> None:
    """NaN would be written as nodata (a silent hole) or, in an integer file, as an arbitrary DN."""
    image = np.zeros((1, 20, 20), dtype=np.float32)
    with pytest.raises(ValueError, match="model returned 4 NaN or infinite values"):
        upscale_tiled(image, lambda b: np.where(np.arange(b.size).reshape(b.shape) < 4, np.nan, b), 1, 32, 8)
