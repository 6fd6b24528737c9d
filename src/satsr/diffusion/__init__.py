"""Diffusion core: schedules, EDM preconditioning, losses, noise and samplers, trajectory fusion. Imports
no model.

Typical use::

    precond = EDMPrecond(net, sigma_data=0.5)
    loss = edm_loss(precond, hr_latent, cond)                      # training
    sigmas = karras_sigmas(32, sigma_min=0.002, sigma_max=80.0)    # sampling
    noise = seeded_noise(seeds, device)
    x = noise.randn(shape) * sigmas[0]
    sr_latent = get_sampler("heun")(bind(precond, cond), x, sigmas, noise=noise)
"""

from satsr.diffusion.losses import edm_loss
from satsr.diffusion.noise import SeededNoise, mix_seed, seeded_noise
from satsr.diffusion.precond import EDMPrecond, bind, edm_scalings
from satsr.diffusion.samplers import (
    SAMPLERS,
    NoiseFn,
    Sampler,
    StepInfo,
    get_sampler,
    sample_ddim,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)
from satsr.diffusion.schedules import karras_sigmas, vp_sigmas

__all__ = [
    "SAMPLERS",
    "EDMPrecond",
    "NoiseFn",
    "Sampler",
    "SeededNoise",
    "StepInfo",
    "bind",
    "edm_loss",
    "edm_scalings",
    "get_sampler",
    "karras_sigmas",
    "mix_seed",
    "sample_ddim",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "seeded_noise",
    "vp_sigmas",
]
