"""Revisits aligned onto the anchor date and weighted per pixel before fusion
(``satsr.data.revisit_weights``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from satsr.data.revisit_weights import RevisitWeighting, align_revisits, anchor_index


def scene(seed: int = 0, side: int = 32) -> np.ndarray:
    """A smooth four-band reflectance image (low-pass noise), like a 40 m field pattern."""
    rng = np.random.default_rng(seed)
    bands = [ndimage.gaussian_filter(rng.normal(size=(side, side)), 1.5) for _ in range(4)]
    return np.stack([0.1 + 0.03 * b / b.std() for b in bands]).astype(np.float32)


def test_the_anchor_is_the_date_nearest_the_target_one_before_it_on_a_tie() -> None:
    assert anchor_index([30.0, 5.0, -12.0]) == 1
    assert anchor_index([-5.0, 5.0]) == 1
    assert anchor_index([0.0, 0.0, 0.0]) == 0


def test_a_shifted_revisit_with_another_gain_is_registered_and_harmonised_onto_the_anchor() -> None:
    anchor = scene()
    other = np.stack([ndimage.shift(b, (0.4, -0.3), order=3, mode="nearest") for b in anchor])
    other = 1.2 * other + 0.01
    aligned = align_revisits(torch.from_numpy(np.stack([anchor, other])), [3.0, 20.0])
    assert aligned.anchor == 0
    assert aligned.shifts[1] == pytest.approx((-0.4, 0.3), abs=0.06)
    assert aligned.gains[1] == pytest.approx((1 / 1.2,) * 4, rel=0.05)
    inner = (slice(None), slice(3, -3), slice(3, -3))  # the edges were extrapolated by the shift
    before = np.abs(other - anchor)[inner].mean()
    after = np.abs(aligned.lrs[1].numpy() - anchor)[inner].mean()
    assert after < 0.1 * before
    torch.testing.assert_close(aligned.lrs[0], torch.from_numpy(anchor))
    assert torch.all(aligned.weights[0] == 1)


def test_a_cloud_the_anchor_does_not_show_weighs_nearly_nothing_there() -> None:
    anchor = scene()
    cloudy = anchor.copy()
    cloudy[:, 4:12, 4:12] = 0.6  # a bright cloud
    aligned = align_revisits(torch.from_numpy(np.stack([anchor, cloudy])), [0.0, 0.0])
    w = aligned.weights[1].numpy()
    assert w[6:10, 6:10].max() < 0.01
    assert w[20:, 20:].min() > 0.9  # clear and identical elsewhere


def test_a_wrong_date_or_a_far_one_weighs_less_and_without_weights_every_revisit_weighs_one() -> None:
    anchor, wrong = scene(0), scene(1)  # another place altogether: disagrees everywhere
    stack = torch.from_numpy(np.stack([anchor, anchor * 1.02, wrong]))
    weights = align_revisits(stack, [0.0, 5.0, 5.0]).weights
    assert weights[2].mean() < 0.1 < 0.8 < weights[1].mean()
    far = align_revisits(stack[:2], [0.0, 90.0]).weights
    assert far[1].mean() < 0.1 * weights[1].mean()  # exp(-90 / 30) of the near one's
    flat = align_revisits(stack, [0.0, 5.0, 5.0], RevisitWeighting(weigh=False)).weights
    assert torch.all(flat == 1)


def test_a_hazy_date_that_needs_its_contrast_doubled_weighs_little_even_where_it_agrees() -> None:
    anchor = scene()
    hazy = 0.5 * anchor + 0.08  # contrast halved, brighter: haze
    weights = align_revisits(torch.from_numpy(np.stack([anchor, hazy])), [0.0, 0.0]).weights
    assert weights[1].max() < 0.1


def test_revisits_without_one_time_difference_each_are_refused() -> None:
    with pytest.raises(ValueError, match="N time differences"):
        align_revisits(torch.zeros(2, 4, 8, 8), [0.0])


@pytest.mark.parametrize("shift", [(0.3, -0.7), (1.5, -1.5), (-0.02, 0.97), (0.0, 0.25), (3.2, -4.9)])
def test_the_registrations_spline_shift_gives_scipys_values(shift: tuple[float, float]) -> None:
    from satsr.data.revisit_weights import _bspline_shift

    coefficients = ndimage.spline_filter(np.random.default_rng(0).random((24, 20)), order=3, mode="nearest")
    expected = ndimage.shift(coefficients, shift, order=3, mode="nearest", prefilter=False)
    np.testing.assert_allclose(_bspline_shift(coefficients, np.array(shift)), expected, atol=1e-12)


def test_a_date_whose_bands_run_against_the_anchors_weighs_nothing() -> None:
    """A gain that cannot be fitted (a band anti-correlated with the anchor's: snow, cloud, another scene
    inverted) is no gain of 1: the date is not trusted anywhere, as one whose gain tends to 0."""
    anchor = scene()
    inverted = (0.3 - anchor).astype(np.float32)  # every band runs against the anchor's
    aligned = align_revisits(torch.from_numpy(np.stack([anchor, inverted])), [0.0, 0.0])
    assert float(aligned.weights[1].max()) == 0.0
    half = anchor.copy()
    half[3] = 0.3 - anchor[3]  # one band only
    assert (
        float(align_revisits(torch.from_numpy(np.stack([anchor, half])), [0.0, 0.0]).weights[1].max()) == 0.0
    )
