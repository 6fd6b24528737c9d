"""Blending windows' HR outputs by a ``StreamPlan``: weighted sums per cell, finished blocks out.

Each window's output is weighted by the outer product of its two 1-D ramps and added to the cells it
covers; a cell is final once the last window covering it has been added, and leaves as a block
normalised by the weight sum. Only cells not final yet are held (``pending``), which is also what a
resumed job needs back.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from satsr.io.tiling import Region, StreamPlan

#: Blended sums of cells not final yet, keyed by (cell row, cell column): what a resumed job needs.
Pending = dict[tuple[int, int], np.ndarray]
#: A final HR block ``(C, h, w)`` at HR pixel ``(row, col)``.
Block = tuple[int, int, np.ndarray]


class Blender:
    """Adds windows' outputs in plan order and yields every block they finish, each HR pixel once.

    With an HR ``region``, only the cells meeting it are kept and yielded (whole: the caller crops).
    """

    def __init__(
        self, plan: StreamPlan, region: Region | None = None, pending: Pending | None = None
    ) -> None:
        self.plan, self.region = plan, region
        self.pending: Pending = {} if pending is None else pending

    def add(self, i: int, j: int, sr_tile: np.ndarray) -> Iterator[Block]:
        """Add window ``(i, j)``'s output ``(C, >= h, >= w)`` (what lies beyond its HR footprint is
        ignored); yield the blocks it completes."""
        rows, cols = self.plan.rows, self.plan.cols
        weighted = sr_tile[:, : rows.length(i), : cols.length(j)] * np.outer(
            rows.weights[i], cols.weights[j]
        ).astype(np.float32)
        row_cells = rows.cells_of(i, None if self.region is None else self.region[:2])
        col_cells = cols.cells_of(j, None if self.region is None else self.region[2:])
        r0, c0 = rows.starts[i], cols.starts[j]
        for ci in row_cells:
            y0, y1 = rows.cells[ci]
            for cj in col_cells:
                x0, x1 = cols.cells[cj]
                part = weighted[:, y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]
                acc = self.pending.pop((ci, cj), None)
                acc = part.copy() if acc is None else acc + part
                if rows.last[ci] == i and cols.last[cj] == j:
                    norm = np.outer(rows.weight_sum[y0:y1], cols.weight_sum[x0:x1])
                    yield y0, x0, (acc / norm).astype(np.float32)
                else:
                    self.pending[(ci, cj)] = acc

    def check_done(self) -> None:
        """Every cell has a last window, so a cell still pending after the last window is a plan bug."""
        if self.pending:
            raise AssertionError(f"{len(self.pending)} blended cells were never written")
