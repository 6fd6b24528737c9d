"""RasterWriter hands GDAL whole blocks: each internal block is compressed once, whatever the pieces."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
from rasterio.shutil import copy as rio_copy
from tests.conftest import Replicate

from satsr.io.writer import BlockAssembler
from satsr.pipelines import upscale_file


def test_pieces_in_any_order_leave_as_whole_blocks_once() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (2, 70, 90)).astype(np.uint16)
    blocks = BlockAssembler(2, 70, 90, np.dtype(np.uint16), fill=0, side=32)
    rows, cols = pairwise([0, 13, 40, 41, 70]), list(pairwise([0, 7, 33, 64, 90]))
    pieces = [(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols]
    out, seen = np.zeros_like(image), []
    for k in rng.permutation(len(pieces)):
        y0, y1, x0, x1 = pieces[k]
        for window, block in blocks.put(y0, x0, image[:, y0:y1, x0:x1]):
            top, left = window.row_off, window.col_off
            seen.append((top, left))
            out[:, top : top + window.height, left : left + window.width] = block
    assert sorted(seen) == [(r, c) for r in (0, 32, 64) for c in (0, 32, 64)]  # each block once
    np.testing.assert_array_equal(out, image)
    assert not blocks.pending


def test_a_streamed_output_is_no_larger_than_a_fresh_copy_of_it(smooth_tif: Path, tmp_path: Path) -> None:
    """Blocks compressed again after each piece were appended anew: the file was twice its size. (A
    resumable job also writes the blocks it is filling at every checkpoint, and again when complete.)"""
    out = upscale_file(smooth_tif, tmp_path / "o.tif", Replicate(), tile_size=24, overlap=6, resumable=False)
    rio_copy(out, tmp_path / "copy.tif", driver="GTiff", compress="deflate", predictor=2, tiled=True)
    assert out.stat().st_size <= (tmp_path / "copy.tif").stat().st_size * 1.1  # it was 6.2 times
