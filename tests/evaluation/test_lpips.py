"""LPIPS against the published reference values, plus its contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from satsr.evaluation.quicklook import rgb_from_s2
from satsr.nn.lpips import LPIPS, LPIPS_ALEX_WEIGHTS, lpips

DATA = Path(__file__).parent / "data"
SHARED_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "weights" / "lpips_reference"
REFERENCE_IMAGES = ("ex_ref.png", "ex_p0.png", "ex_p1.png")
#: Published LPIPS v0.1 (AlexNet) distances of the PerceptualSimilarity example images.
EXPECTED = {"ex_p0.png": 0.722, "ex_p1.png": 0.138}
PIXEL_MAX = 255.0


def _load_minus_one_to_one(path: Path) -> torch.Tensor:
    """An RGB PNG as a (1, 3, H, W) tensor in [-1, 1], as ``lpips.im2tensor`` does."""
    if not path.is_file():
        pytest.skip(f"reference image {path} is missing")
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None] / (PIXEL_MAX / 2) - 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_distances(name: str) -> None:
    reference = _load_minus_one_to_one(DATA / "ex_ref.png")
    distorted = _load_minus_one_to_one(DATA / name)
    assert round(lpips(reference, distorted).item(), 3) == EXPECTED[name]


@pytest.mark.parametrize("name", REFERENCE_IMAGES)
def test_in_repo_images_match_the_shared_originals(name: str) -> None:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("../shared is not available")
    assert (DATA / name).read_bytes() == (SHARED_REFERENCE / name).read_bytes()


def test_identical_images_have_zero_distance_and_batches_work() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    distance = lpips(x, y)
    assert distance.shape == (2,)
    assert (distance > 0).all()
    torch.testing.assert_close(distance, lpips(y, x))


def test_normalize_flag_maps_unit_range_inputs() -> None:
    generator = torch.Generator().manual_seed(1)
    x01, y01 = torch.rand(2, 1, 3, 48, 48, generator=generator)
    torch.testing.assert_close(lpips(x01, y01, normalize=True), lpips(2 * x01 - 1, 2 * y01 - 1))


def test_weights_load_strictly_and_the_helper_is_cached() -> None:
    assert LPIPS_ALEX_WEIGHTS.is_file()
    net = LPIPS()
    assert not net.training
    assert all(not parameter.requires_grad for parameter in net.parameters())
    x = torch.zeros(1, 3, 32, 32)
    lpips(x, x)
    from satsr.nn.lpips import _cached_lpips

    assert _cached_lpips("cpu") is _cached_lpips("cpu")


def test_wrong_inputs_fail_loudly() -> None:
    with pytest.raises(ValueError, match="RGB"):
        lpips(torch.zeros(1, 4, 32, 32), torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="differ in shape"):
        lpips(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16))
    with pytest.raises(FileNotFoundError):
        LPIPS(weights=Path("/nonexistent/lpips.safetensors"))


def test_rgb_from_s2_selects_red_green_blue() -> None:
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)  # channel k holds k
    rgb = rgb_from_s2(x)  # B02, B03, B04, B08 -> B04, B03, B02
    assert rgb[0, :, 0, 0].tolist() == [2.0, 1.0, 0.0]
    custom = rgb_from_s2(x, bands=("B04", "B03", "B02", "B08"))
    assert custom[0, :, 0, 0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="true-colour"):
        rgb_from_s2(x, bands=("B05", "B06", "B07", "B08"))
    with pytest.raises(ValueError, match="bands"):
        rgb_from_s2(x[:, :3])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_distances_hold_under_bf16_autocast_and_bf16_inputs(name: str) -> None:
    reference = _load_minus_one_to_one(DATA / "ex_ref.png")
    distorted = _load_minus_one_to_one(DATA / name)
    net = LPIPS()
    expected = net(reference, distorted)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(reference.bfloat16(), distorted.bfloat16())
    assert low.dtype == torch.float32 and round(low.item(), 3) == EXPECTED[name]
    torch.testing.assert_close(low, expected, rtol=0, atol=5e-3)  # only the inputs' bf16 rounding


def test_the_shared_network_takes_gradients_even_when_first_built_in_inference_mode() -> None:
    """Fusion's center search differentiates through the shared LPIPS; the harness may build it first,
    inside ``torch.inference_mode``, whose tensors autograd refuses."""
    from satsr.nn.lpips import _cached_lpips, shared_lpips

    _cached_lpips.cache_clear()
    with torch.inference_mode():
        shared_lpips("cpu")
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(shared_lpips("cpu")(x, torch.rand(1, 3, 32, 32), normalize=True).sum(), [x])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
