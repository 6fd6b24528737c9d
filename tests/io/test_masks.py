"""The one masked-fill policy (``satsr.io.masks``): the median of the revisits that see a pixel, else the
scene's band means."""

from __future__ import annotations

import numpy as np

from satsr.io.masks import fill_masked


def test_fill_masked_takes_the_median_of_the_revisits_that_see_a_pixel() -> None:
    values = np.stack([np.full((2, 2, 2), v, np.float32) for v in (1.0, 2.0, 4.0)])
    valid = np.ones((3, 2, 2), bool)
    valid[0, 0, 0] = False  # seen by revisits 1 and 2: median 3
    valid[:, 1, 1] = False  # seen by none: the band mean of the seen pixels
    filled = fill_masked(values, valid)
    assert filled[0, 0, 0, 0] == 3.0 and filled[1, 0, 0, 0] == 2.0
    seen = values[:, 0][valid]
    np.testing.assert_allclose(filled[:, 0, 1, 1], seen.mean())
