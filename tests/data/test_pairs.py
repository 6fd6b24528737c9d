from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from satsr.data.degradation import bicubic_degrade, wald_degrade
from satsr.data.pairs import AerialPatches, PlacePatches, WaldPatches, dihedral
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


def test_place_patches_are_aligned_cuts_of_the_whole_degraded_scene(scene: Scene) -> None:
    data = PlacePatches([scene], scale=4, lr_patch=8, length=50, augment=False, seed=1)
    whole_lr = wald_degrade(torch.from_numpy(scene.pixels)[None], 4, S2_RGBN)[0]
    for index in range(50):
        lr, hr = data[index]
        assert lr.shape == (4, 8, 8) and hr.shape == (4, 32, 32)
        # Find the HR window in the scene; the LR must be the same window of the degraded scene.
        hits = np.argwhere(scene.pixels[0] == hr[0, 0, 0].item())  # random values: one hit
        top, left = (int(v) for v in hits[0])
        assert top % 4 == 0 and left % 4 == 0
        torch.testing.assert_close(hr, torch.from_numpy(scene.pixels[:, top : top + 32, left : left + 32]))
        torch.testing.assert_close(lr, whole_lr[:, top // 4 : top // 4 + 8, left // 4 : left // 4 + 8])
    torch.testing.assert_close(data[7][0], PlacePatches([scene], 4, 8, 50, False, seed=1)[7][0])


def test_place_patches_draw_every_source_equally_and_use_small_tiles_whole() -> None:
    rng = np.random.default_rng(0)
    big = Scene("big", rng.random((4, 400, 400), dtype=np.float32), S2_RGBN, source="a")
    tiles = [
        Scene(f"t{i}", rng.random((4, 32, 32), dtype=np.float32) + 2 + i, S2_RGBN, source="b")
        for i in range(3)
    ]
    data = PlacePatches([big, *tiles], scale=4, lr_patch=8, length=600, augment=True, seed=0)
    picks = [float(data[i][1].mean()) for i in range(600)]
    from_tiles = [p for p in picks if p > 1.5]
    # Half of the draws from the 3 small tiles (one source), each used whole: its mean is its own.
    assert 240 < len(from_tiles) < 360
    assert {int(p) for p in from_tiles} == {2, 3, 4}
    with pytest.raises(ValueError, match="no scene is large enough"):
        PlacePatches(tiles, scale=4, lr_patch=16)


def test_dihedral_group_has_eight_distinct_elements() -> None:
    x = torch.arange(9.0).view(1, 3, 3)
    assert len({tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}) == 8


def write_pictures(folder: Path, sizes: list[tuple[int, int]], suffix: str = ".png") -> list[Path]:
    """Smooth RGB pictures (plus a little texture) of the given (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (width, height) in enumerate(sizes):
        yy, xx = np.mgrid[0:height, 0:width]
        rgb = np.stack([128 + 100 * np.sin(xx / (6 + c) + i) * np.cos(yy / 9) for c in range(3)], axis=-1)
        path = folder / f"{i:02d}{suffix}"
        Image.fromarray(rgb.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(("scale", "hr_side"), [(4, 32), (2.5, 20), (3.3, 26)])
def test_aerial_patches_have_the_sizes_of_the_scale(tmp_path: Path, scale: float, hr_side: int) -> None:
    images = write_pictures(tmp_path, [(64, 48), (50, 70)])
    lr, hr = AerialPatches(images, scale=scale, lr_patch=8, length=4, seed=1)[3]
    assert hr.shape == (3, hr_side, hr_side) and lr.shape == (3, 8, 8)
    assert hr.dtype == torch.float32 and float(hr.min()) >= 0.0 and float(hr.max()) <= 1.0


def test_aerial_patches_are_reproducible_and_lr_is_the_bicubic_degradation(tmp_path: Path) -> None:
    images = write_pictures(tmp_path, [(64, 48), (50, 70)], suffix=".jpg")
    data = AerialPatches(images, scale=2, lr_patch=8, length=10, seed=3)
    lr, hr = data[5]
    lr2, hr2 = AerialPatches(images, scale=2, lr_patch=8, length=10, seed=3)[5]
    torch.testing.assert_close(hr, hr2)
    torch.testing.assert_close(lr, lr2)
    assert not torch.equal(hr, data[6][1])
    torch.testing.assert_close(lr, bicubic_degrade(hr[None], 2)[0])
    assert len(data._cache) > 0  # decoded pictures are kept


def test_aerial_augmentation_is_a_dihedral_map_of_the_plain_crop(tmp_path: Path) -> None:
    images = write_pictures(tmp_path, [(64, 64)])
    plain = AerialPatches(images, scale=2, lr_patch=8, length=4, augment=False, seed=0)[2][1]
    augmented = AerialPatches(images, scale=2, lr_patch=8, length=4, augment=True, seed=0)[2][1]
    assert any(torch.equal(dihedral(plain, k), augmented) for k in range(8))


def test_aerial_pictures_too_small_are_refused(tmp_path: Path) -> None:
    images = write_pictures(tmp_path, [(20, 20)])
    with pytest.raises(ValueError, match="no image is large enough"):
        AerialPatches(images, scale=4, lr_patch=8)
