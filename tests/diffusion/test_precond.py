"""EDM preconditioning, bind, the EDM loss, and the Conditioning record."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from satsr.diffusion import EDMPrecond, bind, edm_loss, edm_scalings, karras_sigmas, sample_heun, seeded_noise
from satsr.types import Conditioning


class Recorder(nn.Module):
    """A raw network that remembers its inputs and returns a fixed affine map of x_in."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor, Any, dict[str, Any]]] = []

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: Any, **kwargs: Any) -> Tensor:
        self.calls.append((x_in, c_noise, cond, kwargs))
        return 0.3 * x_in - 0.1


class PointwiseNet(nn.Module):
    """1x1 convolutions: every output pixel depends on its own input pixel only."""

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels + 1, 16, 1), nn.SiLU(), nn.Conv2d(16, channels, 1))

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None) -> Tensor:
        noise_map = c_noise.reshape(-1, 1, 1, 1).expand(-1, 1, *x_in.shape[2:])
        return self.body(torch.cat([x_in, noise_map], dim=1))


class ToyMLP(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(3, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def forward(self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None) -> Tensor:
        return self.body(torch.cat([x_in, c_noise[:, None]], dim=1))


@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_scalings_follow_table1(sigma_data: float) -> None:
    sigma = torch.tensor([1e-3, 0.2, 1.0, 80.0], dtype=torch.float64)
    s = edm_scalings(sigma, sigma_data, ndim=4)
    assert s.c_skip.shape == (4, 1, 1, 1) and s.c_noise.shape == (4,)
    for k, value in enumerate(sigma.tolist()):
        total = value**2 + sigma_data**2
        assert s.c_skip[k].item() == pytest.approx(sigma_data**2 / total, rel=1e-12)
        assert s.c_out[k].item() == pytest.approx(value * sigma_data / math.sqrt(total), rel=1e-12)
        assert s.c_in[k].item() == pytest.approx(1 / math.sqrt(total), rel=1e-12)
        assert s.c_noise[k].item() == pytest.approx(math.log(value) / 4, rel=1e-12)
    # the raw net's target (x0 - c_skip (x0 + sigma n)) / c_out has unit variance when std(x0) = sigma_data
    c_skip, c_out = s.c_skip.flatten(), s.c_out.flatten()
    target_var = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_var, torch.ones_like(sigma), rtol=1e-12, atol=0)


def test_denoiser_tends_to_identity_at_small_sigma_and_feeds_the_net_its_inputs() -> None:
    net = Recorder()
    precond = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(precond(x, torch.full((3,), 1e-6)), x, atol=1e-5, rtol=0)

    sigma = torch.tensor([0.1, 1.0, 10.0])
    cond = Conditioning(lr=torch.zeros(3, 2, 1, 1))
    out = precond(x, sigma, cond, extra=7)
    x_in, c_noise, got_cond, kwargs = net.calls[-1]
    c_in = (sigma**2 + 0.25).rsqrt().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_in, x * c_in)
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    assert got_cond is cond and kwargs == {"extra": 7}
    c_skip = (0.25 / (sigma**2 + 0.25)).reshape(-1, 1, 1, 1)
    c_out = (sigma * 0.5 / (sigma**2 + 0.25).sqrt()).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, c_skip * x + c_out * (0.3 * x_in - 0.1))


def test_sigma_may_be_scalar_or_batched_but_must_match() -> None:
    precond = EDMPrecond(Recorder())
    x = torch.randn(2, 1, 3, 3)
    reference = precond(x, torch.tensor([0.7, 0.7]))
    for sigma in (0.7, torch.tensor(0.7), torch.tensor([0.7]), torch.full((2, 1, 1, 1), 0.7)):
        torch.testing.assert_close(precond(x, sigma), reference)
    with pytest.raises(ValueError, match="batch of 2"):
        precond(x, torch.ones(3))


def test_wrong_network_output_shape_raises() -> None:
    class Bad(nn.Module):
        def forward(self, x_in: Tensor, c_noise: Tensor, cond: Any) -> Tensor:
            return x_in[:, :1]

    with pytest.raises(ValueError, match="raw network returned shape"):
        EDMPrecond(Bad())(torch.zeros(1, 2, 2, 2), 1.0)
    with pytest.raises(ValueError, match="sigma_data"):
        EDMPrecond(Recorder(), sigma_data=0.0)


def test_bind_closes_over_conditioning() -> None:
    net = Recorder()
    precond = EDMPrecond(net)
    cond = torch.ones(2, 3)
    denoise = bind(precond, cond, extra="yes")
    x, sigma = torch.randn(2, 1, 2, 2), torch.tensor([0.5, 2.0])
    torch.testing.assert_close(denoise(x, sigma), precond(x, sigma, cond, extra="yes"))
    assert net.calls[0][2] is cond and net.calls[0][3] == {"extra": "yes"}


def test_edm_loss_is_the_weighted_denoising_error_of_the_same_forward() -> None:
    torch.manual_seed(0)
    precond = EDMPrecond(PointwiseNet(), sigma_data=0.5)
    x0 = torch.randn(4, 2, 5, 5) * 0.5
    loss = edm_loss(precond, x0, generator=torch.Generator().manual_seed(3), P_mean=-1.0, P_std=1.5)

    g = torch.Generator().manual_seed(3)
    sigma = (torch.randn(4, generator=g) * 1.5 - 1.0).exp()
    x_t = x0 + torch.randn(x0.shape, generator=g) * sigma.reshape(-1, 1, 1, 1)
    weight = ((sigma**2 + 0.25) / (sigma * 0.5) ** 2).reshape(-1, 1, 1, 1)
    expected = (weight * (precond(x_t, sigma) - x0) ** 2).mean()
    assert loss.ndim == 0 and torch.isfinite(loss)
    torch.testing.assert_close(loss, expected)


def test_edm_loss_mask_ignores_nodata() -> None:
    torch.manual_seed(0)
    precond = EDMPrecond(PointwiseNet())
    x0 = torch.randn(2, 2, 4, 4) * 0.5
    mask = torch.ones(2, 1, 4, 4)
    mask[:, :, :2] = 0
    corrupted = x0.clone()
    corrupted[:, :, :2] = 1e3  # nodata fill values must not matter

    def loss(data: Tensor, m: Tensor | None) -> Tensor:
        return edm_loss(precond, data, generator=torch.Generator().manual_seed(1), mask=m)

    torch.testing.assert_close(loss(corrupted, mask), loss(x0, mask))
    torch.testing.assert_close(loss(x0, torch.ones(2, 1, 4, 4)), loss(x0, None))
    assert loss(corrupted, None) > 100 * loss(x0, mask)


def two_mode_data(n: int, generator: torch.Generator) -> Tensor:
    centers = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    return centers[torch.randint(0, 2, (n,), generator=generator)] + 0.05 * torch.randn(
        n, 2, generator=generator
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny matmuls are fastest single-threaded, and far less fragile on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_training_a_tiny_net_lowers_the_loss_and_samples_land_on_the_data() -> None:
    """300 Adam steps on a 2-D two-mode toy; the same precond then drives Heun sampling (about 2 s)."""
    torch.manual_seed(0)
    precond = EDMPrecond(ToyMLP(), sigma_data=0.5)
    optimizer = torch.optim.Adam(precond.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    eval_x0 = two_mode_data(1024, torch.Generator().manual_seed(1))

    def eval_loss() -> float:
        with torch.no_grad():
            return edm_loss(precond, eval_x0, generator=torch.Generator().manual_seed(2)).item()

    before = eval_loss()
    for _ in range(300):
        loss = edm_loss(precond, two_mode_data(256, g), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert math.isfinite(after) and after < 0.5 * before

    sigmas = karras_sigmas(20, sigma_max=20.0)
    noise = seeded_noise(range(256))
    samples = sample_heun(bind(precond), noise.randn((256, 2)) * sigmas[0], sigmas)
    distance = torch.cdist(samples, torch.tensor([[1.0, 1.0], [-1.0, 1.0]])).min(dim=1).values
    assert distance.median() < 0.15
    assert 0.3 < (samples[:, 0] > 0).float().mean() < 0.7  # both modes are visited


def test_conditioning_validates_its_fields() -> None:
    lr = torch.zeros(2, 4, 8, 8)
    assert Conditioning(lr).scale == 4.0 and Conditioning(lr).batch_size == 2
    Conditioning(torch.zeros(2, 3, 4, 8, 8), scale=2.5, dt_days=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="lr must be"):
        Conditioning(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="scale"):
        Conditioning(lr, scale=0.0)
    with pytest.raises(ValueError, match="dt_days"):
        Conditioning(torch.zeros(2, 3, 4, 8, 8), dt_days=torch.zeros(2, 2))
    with pytest.raises(AttributeError):
        Conditioning(lr).scale = 2.0  # type: ignore[misc]
