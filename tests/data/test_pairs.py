import numpy as np
import pytest
import torch

from satsr.data.pairs import WaldPatches, dihedral
from satsr.data.sources import Scene
from satsr.io.bands import S2_RGBN


@pytest.fixture
def scene() -> Scene:
    pixels = np.random.default_rng(0).random((4, 200, 180), dtype=np.float32)
    return Scene("synthetic", pixels, S2_RGBN)


def test_pairs_have_matching_shapes_and_are_reproducible(scene: Scene) -> None:
    data = WaldPatches([scene], scale=4, lr_patch=8, length=10, seed=3)
    lr, hr = data[5]
    assert lr.shape == (4, 8, 8) and hr.shape == (4, 32, 32)
    lr2, hr2 = WaldPatches([scene], scale=4, lr_patch=8, length=10, seed=3)[5]
    torch.testing.assert_close(lr, lr2)
    torch.testing.assert_close(hr, hr2)
    assert not torch.equal(hr, data[6][1])


def test_lr_is_the_degraded_hr() -> None:
    """On a smooth scene the LR of a pair is close to a block average of its HR (the blur is local)."""
    yy, xx = np.mgrid[0:200, 0:180].astype(np.float32)
    smooth = 0.2 + 0.1 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    scene = Scene("smooth", np.stack([smooth] * 4), S2_RGBN)
    lr, hr = WaldPatches([scene], 4, 8, length=1, augment=False)[0]
    block_mean = torch.nn.functional.avg_pool2d(hr[None], 4)[0]
    assert (lr - block_mean).abs().mean() < (lr - lr.mean()).abs().mean()


def test_too_small_scenes_are_refused() -> None:
    tiny = Scene("tiny", np.zeros((4, 20, 20), np.float32), S2_RGBN)
    with pytest.raises(ValueError, match="no scene is large enough"):
        WaldPatches([tiny], scale=4, lr_patch=8)


def test_dihedral_group_has_eight_distinct_elements() -> None:
    x = torch.arange(9.0).view(1, 3, 3)
    assert len({tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}) == 8
