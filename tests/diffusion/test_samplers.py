"""Contract tests over every sampler, with analytic denoisers, plus the schedules."""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

import satsr.diffusion
from satsr.diffusion.noise import seeded_noise
from satsr.diffusion.samplers import SAMPLERS, Sampler, StepInfo, get_sampler, sample_ddim, sample_euler
from satsr.diffusion.schedules import karras_sigmas, vp_sigmas

MU, STD = 1.0, 0.5
#: Every registered sampler, plus stochastic DDIM so that the noise path is covered too.
CASES: dict[str, Sampler] = {**SAMPLERS, "ddim_eta1": partial(sample_ddim, eta=1.0)}
STOCHASTIC = {"ddim_eta1"}
CALLS_PER_STEPS: dict[str, Callable[[int], int]] = {
    "euler": lambda n: n,
    "heun": lambda n: 2 * n - 1,
    "ddim": lambda n: n,
    "dpmpp_2m": lambda n: n,
    "ddim_eta1": lambda n: n,
}


def gaussian_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
    """The exact D(x, sigma) = E[x0 | x] for x0 ~ N(MU, STD^2) per element."""
    sigma = sigma.reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
    return (STD**2 * x + sigma**2 * MU) / (STD**2 + sigma**2)


def run(name: str, sigmas: Tensor, seeds: list[int], shape: tuple[int, ...] = (1, 8, 8)) -> Tensor:
    noise = seeded_noise(seeds)
    x = noise.randn((len(seeds), *shape)) * sigmas[0]
    return CASES[name](gaussian_denoiser, x, sigmas, noise=noise)


def test_registry_covers_the_contract_table() -> None:
    assert set(CALLS_PER_STEPS) == set(CASES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", [(3, 5, 7), (2,)])
def test_shape_and_dtype_are_preserved(name: str, shape: tuple[int, ...]) -> None:
    out = run(name, karras_sigmas(4), [0, 1], shape)
    assert out.shape == (2, *shape) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", CASES)
def test_deterministic_given_seeds_whatever_the_global_rng(name: str) -> None:
    torch.manual_seed(0)
    first = run(name, karras_sigmas(6), [5, 6])
    torch.manual_seed(123)
    torch.testing.assert_close(run(name, karras_sigmas(6), [5, 6]), first, rtol=0, atol=0)
    assert not torch.equal(run(name, karras_sigmas(6), [5, 7])[1], first[1])


@pytest.mark.parametrize("name", CASES)
def test_sample_is_independent_of_batch_composition(name: str) -> None:
    sigmas = karras_sigmas(8)
    batch = run(name, sigmas, [3, 7, 11, 5])
    for k, seed in enumerate([3, 7, 11, 5]):
        torch.testing.assert_close(run(name, sigmas, [seed])[0], batch[k])
    torch.testing.assert_close(run(name, sigmas, [11, 42])[0], batch[2])


@pytest.mark.parametrize("name", CASES)
def test_only_the_denoise_callable_is_called(name: str) -> None:
    """A plain function is enough; it gets (B,) sigmas from the schedule, in descending order."""
    sigmas, seen = karras_sigmas(5), []

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        assert sigma.shape == (x.shape[0],) and sigma.dtype == x.dtype
        seen.append(float(sigma[0]))
        return torch.zeros_like(x)

    def no_noise(like: Tensor) -> Tensor:
        raise AssertionError("a deterministic sampler drew noise")

    x = torch.randn(2, 1, 4, 4) * sigmas[0]
    CASES[name](denoise, x, sigmas, noise=torch.randn_like if name in STOCHASTIC else no_noise)
    assert len(seen) == CALLS_PER_STEPS[name](5)
    schedule = sigmas.float().tolist()
    assert all(any(math.isclose(s, t, rel_tol=1e-6) for t in schedule[:-1]) for s in seen)
    assert seen == sorted(seen, reverse=True)


def test_diffusion_package_imports_no_model_code() -> None:
    forbidden = ("satsr.models", "satsr.nn", "satsr.training", "satsr.pipelines")
    for path in Path(satsr.diffusion.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                assert not any(n.startswith(forbidden) for n in names), f"{path.name} imports {names}"


@pytest.mark.parametrize("name", CASES)
def test_gaussian_data_moments_are_recovered(name: str) -> None:
    """With the exact denoiser of N(MU, STD^2) data, 4096 samples have its mean and std.

    Ancestral sampling under-disperses at coarse steps (it ignores the spread of x0 given x_t: std 0.45
    at 50 steps), hence more steps for it.
    """
    out = run(name, karras_sigmas(400 if name in STOCHASTIC else 50), list(range(16)), (1, 16, 16))
    assert out.mean().item() == pytest.approx(MU, abs=0.05)
    assert out.std().item() == pytest.approx(STD, rel=0.1)


def test_second_order_samplers_are_more_accurate_than_euler() -> None:
    """Gaussian data make the probability-flow ODE exact: x(0) = MU + (x_T - MU) STD / sqrt(STD^2 + s^2)."""
    sigmas = karras_sigmas(20, sigma_max=80.0)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80.0
    exact = MU + (x - MU) * STD / math.sqrt(STD**2 + 80.0**2)
    error = {
        name: (SAMPLERS[name](gaussian_denoiser, x, sigmas) - exact).abs().max().item() for name in SAMPLERS
    }
    assert error["heun"] < error["euler"] / 2 and error["dpmpp_2m"] < error["euler"] / 2
    torch.testing.assert_close(
        sample_ddim(gaussian_denoiser, x, sigmas), sample_euler(gaussian_denoiser, x, sigmas)
    )


@pytest.mark.parametrize("name", CASES)
def test_point_mass_data_ends_exactly_on_the_point(name: str) -> None:
    c = torch.tensor([0.3, -1.7]).reshape(1, 2, 1, 1)

    def denoise(x: Tensor, sigma: Tensor) -> Tensor:
        return c.expand_as(x).clone()

    sigmas, noise = vp_sigmas(10), seeded_noise([0, 1, 2])
    out = CASES[name](denoise, noise.randn((3, 2, 3, 3)) * sigmas[0], sigmas, noise=noise)
    assert torch.equal(out, c.expand_as(out))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize(
    "sigmas",
    [
        torch.tensor([1.0, 0.5]),  # does not end in 0
        torch.tensor([0.5, 1.0, 0.0]),  # not descending
        torch.tensor([1.0, 1.0, 0.0]),  # repeated
        torch.tensor([float("nan"), 0.0]),
        torch.tensor([0.0]),
        torch.tensor([[1.0, 0.0]]),
    ],
)
def test_bad_sigmas_raise(name: str, sigmas: Tensor) -> None:
    with pytest.raises(ValueError, match="sigmas"):
        CASES[name](gaussian_denoiser, torch.zeros(1, 1, 2, 2), sigmas)


@pytest.mark.parametrize("name", CASES)
def test_callback_sees_every_step_and_what_a_wrapper_returned(name: str) -> None:
    """A stateful DenoiseFn wrapper (the shape of fusion) can act every k-th step, found from sigma."""
    sigmas = karras_sigmas(6)
    schedule = sigmas.tolist()
    target = torch.full((2, 1, 4, 4), 0.25)

    def fused(x: Tensor, sigma: Tensor) -> Tensor:
        step = min(range(len(schedule)), key=lambda j: abs(schedule[j] - float(sigma[0])))
        return target.clone() if step % 2 == 0 else gaussian_denoiser(x, sigma)

    infos: list[StepInfo] = []
    noise = seeded_noise([0, 1])
    CASES[name](fused, noise.randn((2, 1, 4, 4)) * sigmas[0], sigmas, noise=noise, callback=infos.append)
    assert [info.i for info in infos] == list(range(6))
    assert [(info.sigma, info.sigma_next) for info in infos] == list(itertools.pairwise(schedule))
    for info in infos:
        assert torch.equal(info.denoised, target) == (info.i % 2 == 0)


def test_get_sampler() -> None:
    assert get_sampler("heun") is SAMPLERS["heun"]
    with pytest.raises(ValueError, match=r"unknown sampler 'rk45'.*dpmpp_2m"):
        get_sampler("rk45")


def test_seeded_noise_checks_the_batch() -> None:
    with pytest.raises(ValueError, match="seeds"):
        seeded_noise([1, 2]).randn((3, 4))
    with pytest.raises(ValueError, match="empty"):
        seeded_noise([])


def test_karras_sigmas_follow_eq5() -> None:
    sigmas = karras_sigmas(5, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (6,) and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    ramp = np.linspace(0, 1, 5)
    expected = (80.0 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    np.testing.assert_allclose(sigmas[:-1].numpy(), expected, rtol=1e-12)
    assert (sigmas[:-1] > sigmas[1:]).all()
    with pytest.raises(ValueError):
        karras_sigmas(5, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError):
        karras_sigmas(0)


def test_vp_sigmas_are_the_ddpm_noise_levels_on_ddim_uniform_steps() -> None:
    sigmas = vp_sigmas(10, beta_start=1e-4, beta_end=0.02, timesteps=1000)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (11,) and sigmas[-1] == 0
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    t = np.arange(900, -1, -100)
    np.testing.assert_allclose(sigmas[:-1].numpy(), np.sqrt((1 - abar[t]) / abar[t]), rtol=1e-12)
    assert sigmas[-2].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)))
    assert (sigmas[:-1] > sigmas[1:]).all() and vp_sigmas(1000)[0].item() > 14.0
    with pytest.raises(ValueError):
        vp_sigmas(1001)
