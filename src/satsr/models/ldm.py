"""Single-image latent diffusion super-resolution (as ESA OpenSR's LDSR-S2), assembled from shared parts.

A frozen first stage (a trained ``KLAutoencoder``, or the lossless ``SpaceToDepth``) maps HR images to
latents at the LR grid (factor 4 = scale 4). The
denoiser is an EDM-preconditioned ``ConditionalUNet`` that sees the noisy latent concatenated
with the condition: the standardised LR image and the latent of a reference upsampling of it
(the fast CNN when bundled, else bicubic). It diffuses the latent *residual* to that reference,
so it spends its capacity on the detail the reference lacks. After sampling, the decoded image
is back-projected onto the LR (``satsr.models.consistency``) unless ``lr_consistency`` is off.

``detail`` scales how far a sample departs from the posterior mean: the sampler's first denoised
estimate, made at ``sigma_max`` where the noisy input says almost nothing, is the network's minimum-
mean-square-error prediction E[z | LR]; the output is ``mean + w * (sample - mean)`` with ``w = detail``
everywhere, or, with ``detail_threshold > 0``, ``w = detail * min(1, structure / detail_threshold)`` per
pixel: ``structure`` is how much the reference network changes bicubic upsampling there (mean absolute
difference over bands, in band-standardised units, averaged over 3 x 3 LR pixels). Texture is then
drawn where the LR shows structure (edges, fields' borders, roofs, roads) and not where it shows none
(open water, the inside of a uniform field), where any texture would be invented. ``detail`` 1 with no
threshold is a plain sample, 0 the mean (what a regression network gives); values between trade the
texture a sample draws against the error it costs where the LR cannot tell it (the perception-distortion
trade-off, Blau & Michaeli 2018).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.diffusion.noise import SeededNoise, field_noise, mix_seed
from satsr.diffusion.precond import EDMPrecond, bind
from satsr.diffusion.samplers import StepInfo, get_sampler
from satsr.diffusion.schedules import karras_sigmas
from satsr.models.autoencoder import build_first_stage
from satsr.models.consistency import DEFAULT_ITERATIONS, project_to_lr, sensor_degradation
from satsr.models.denoiser import ConditionalUNet
from satsr.models.fast import ResidualSR
from satsr.models.revisit_fusion import FusionConfig, fuse_revisits, revisit_conditioning
from satsr.nn.layers import pad_to_multiple
from satsr.types import DenoiseFn

#: ``LatentDiffusionSR.precision`` values: the dtype the denoiser network computes in while sampling.
PRECISIONS = ("float32", "bfloat16")


@functools.cache
def bfloat16_is_native(device_type: str) -> bool:
    """Whether bf16 units back autocast on this device: a CUDA GPU that supports bf16, or a CPU with
    AVX512-BF16 or AMX (read from Linux's /proc/cpuinfo). Elsewhere bf16 is emulated, several times slower
    than float32 (a training step measured 7x slower on an AVX2-only CPU), so ``precision="bfloat16"``
    samples in float32 there."""
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def in_bfloat16(denoise: DenoiseFn, device_type: str) -> DenoiseFn:
    """``denoise`` with its network under bfloat16 autocast: convolutions and matrix products in bf16 (the
    speed lever of CPUs with AVX512-BF16 or AMX, and of GPUs), while EDM's skip path ``c_skip * x`` and
    the sampler's updates stay in the latent's float32, so rounding enters only through the network's
    output ``F``, which is scaled by ``c_out`` (small at the low noise levels that decide the result)."""

    def run(x: Tensor, sigma: Tensor) -> Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return denoise(x, sigma)

    return run


class LatentDiffusionSR(nn.Module):
    """LR (B, C, h, w) reflectance -> samples (B, C, h * scale, w * scale); see the module docstring."""

    stochastic = True

    def __init__(
        self,
        autoencoder: dict[
            str, Any
        ],  # first-stage config (``build_first_stage``): a KLAutoencoder's by default
        unet: dict[str, Any],  # ConditionalUNet arguments; cond_channels = bands + latent channels
        reference: dict[str, Any] | None = None,  # ResidualSR arguments; None: bicubic reference
        bands: Sequence[str] = ("B02", "B03", "B04", "B08"),  # band names, for the sensor model
        scale: int = 4,  # SR factor; must equal the autoencoder's downsampling factor
        sigma_data: float = 0.5,  # std of the latent residuals (EDM preconditioning)
        sigma_min: float = 0.002,  # sampling noise range
        sigma_max: float = 10.0,
        default_steps: int = 20,  # sampler steps when not given
        sampler: str = "dpmpp_2m",  # name in satsr.diffusion.SAMPLERS
        lr_consistency: bool = True,  # back-project every sample onto its LR input
        detail: float = 1.0,  # sample = mean + detail * (sample - mean); see the module docstring
        detail_threshold: float = 0.0,  # > 0: detail only where the LR shows structure (module docstring)
        precision: str = "float32",  # "bfloat16": the denoiser under bf16 autocast where bf16 is native
        fusion: dict[str, Any] | None = None,  # FusionConfig settings this model fuses revisits with
    ) -> None:
        super().__init__()
        self.autoencoder = build_first_stage(autoencoder)
        if self.autoencoder.downsampling_factor != scale:
            raise ValueError(f"autoencoder factor {self.autoencoder.downsampling_factor} != scale {scale}")
        self.reference = ResidualSR(**reference) if reference is not None else None
        denoiser = ConditionalUNet(**unet)
        self.size_multiple = denoiser.size_multiple  # latent (= LR) sides must be multiples of it
        self.precond = EDMPrecond(denoiser, sigma_data)
        self.bands, self.scale = tuple(bands), scale
        self.sigma_min, self.sigma_max, self.default_steps = sigma_min, sigma_max, default_steps
        self.sampler, self.lr_consistency = sampler, lr_consistency
        if not 0.0 <= detail <= 1.0:
            raise ValueError(f"detail must be in [0, 1], got {detail}")
        self.detail = float(detail)
        if detail_threshold < 0 or (detail_threshold > 0 and reference is None):
            raise ValueError(
                f"detail_threshold must be >= 0 and needs a reference network, got {detail_threshold}"
            )
        self.detail_threshold = float(detail_threshold)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.fusion = FusionConfig.from_dict(fusion or {})
        get_sampler(sampler)  # fail at load time on an unknown name
        self._aux: dict[str, nn.Module] = {}  # helpers loaded on first use (not part of the weights)

    @property
    def time_conditioned(self) -> bool:
        """Whether the denoiser takes ``dt_days`` (a multi-revisit fusion model)."""
        return getattr(self.precond.net, "dt_embed", None) is not None

    def reference_sr(self, lr: Tensor) -> Tensor:
        """The deterministic upsampling the diffusion refines."""
        if self.reference is not None:
            out: Tensor = self.reference(lr)
            return out
        return F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)

    def condition(self, lr: Tensor, reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(cond, z_ref)``: the denoiser's condition and the reference latent the residual is added to
        (``reference``: ``reference_sr(lr)`` when the caller has it already)."""
        z_ref = self.autoencoder.encode_latent(self.reference_sr(lr) if reference is None else reference)
        return torch.cat([self.autoencoder.normalize(lr), z_ref], dim=1), z_ref

    def detail_weight(self, lr: Tensor, reference: Tensor) -> Tensor:
        """``w`` (B, 1, H, W) of the module docstring: ``detail``, times the structure gate if it is on."""
        weight = reference.new_full((reference.shape[0], 1, *reference.shape[-2:]), self.detail)
        if self.detail_threshold == 0:
            return weight
        bicubic = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        change = ((reference - bicubic) / self.autoencoder.band_std).abs().mean(dim=1, keepdim=True)
        structure = F.avg_pool2d(
            F.avg_pool2d(change, self.scale), 3, stride=1, padding=1, count_include_pad=False
        )
        structure = F.interpolate(structure, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return weight * (structure / self.detail_threshold).clamp(max=1.0)

    def target(self, hr: Tensor, z_ref: Tensor) -> Tensor:
        """The training target: the HR latent minus the reference latent."""
        return self.autoencoder.encode_latent(hr) - z_ref

    @torch.no_grad()
    def sample(
        self,
        lr: Tensor,
        seeds: Sequence[int],
        steps: int | None = None,
        origins: Sequence[tuple[int, int]] | None = None,
    ) -> Tensor:
        """One sample per LR image; item ``i`` is fixed by ``seeds[i]`` (and ``origins[i]``, see below).

        With ``origins`` (the LR pixel offsets of tiles of one scene) the initial noise is cut from a
        scene-wide noise field seeded by ``seeds[i]``, so overlapping tiles start from the same noise
        where they overlap and blend without seams. LR sides that the UNet cannot halve often enough
        are padded (edge values repeated) at the bottom and right, and the padding is cropped from the output.
        """
        height, width = lr.shape[-2:]
        lr = self._pad(lr)
        reference = self.reference_sr(lr)
        cond, z_ref = self.condition(lr, reference)
        sigmas = karras_sigmas(steps or self.default_steps, self.sigma_min, self.sigma_max, device=lr.device)
        noise = SeededNoise(
            [mix_seed(s, o) for s, o in zip(seeds, origins or [(0, 0)] * len(seeds), strict=True)], lr.device
        )
        if origins is None:
            x = noise.randn(z_ref.shape, dtype=z_ref.dtype)
        else:
            x = torch.stack([field_noise(s, o, z_ref.shape[1:]) for s, o in zip(seeds, origins, strict=True)])
        x = x.to(lr.device) * float(sigmas[0])
        # A time-conditioned (fusion) model upscaling one image: the target date is its own (dt = 0).
        kwargs = {"dt_days": lr.new_zeros(len(lr))} if self.time_conditioned else {}
        residual, mean = self.run_sampler(self.denoiser(cond, **kwargs), x, sigmas, noise)
        sr = self.finish(z_ref, residual, mean, lr, reference)
        return sr[..., : height * self.scale, : width * self.scale]

    def denoiser(self, cond: Tensor, **kwargs: Tensor) -> DenoiseFn:
        """The preconditioned denoiser bound to ``cond``, under bfloat16 autocast where the model's precision
        asks for it and the hardware has bf16 units."""
        denoise = bind(self.precond, cond, **kwargs)
        if self.precision == "bfloat16" and bfloat16_is_native(cond.device.type):
            denoise = in_bfloat16(denoise, cond.device.type)
        return denoise

    def run_sampler(
        self, denoise: DenoiseFn, x: Tensor, sigmas: Tensor, noise: SeededNoise
    ) -> tuple[Tensor, Tensor | None]:
        """The model's sampler from ``x`` (noise at ``sigmas[0]``): the final residual latent, and the first
        denoised estimate (at ``sigma_max``: the posterior mean, see the module docstring; None if the
        sampler reported no step)."""
        first: list[Tensor] = []

        def keep_first(step: StepInfo) -> None:
            if not first:
                first.append(step.denoised)

        residual = get_sampler(self.sampler)(denoise, x, sigmas.to(x.dtype), noise=noise, callback=keep_first)
        return residual, (first[0] if first else None)

    def finish(
        self,
        z_ref: Tensor,
        residual: Tensor,
        mean: Tensor | None,
        lr: Tensor,
        reference: Tensor,
        project_onto: Tensor | None = None,
    ) -> Tensor:
        """Decoded samples: ``detail`` and its structure gate (from ``lr``) applied around the decoded
        ``mean`` residual, then back-projected onto ``project_onto`` (default ``lr``) when
        ``lr_consistency`` is on."""
        sr = self.autoencoder.decode_latent(z_ref + residual)
        if self.detail != 1.0 or self.detail_threshold > 0:
            if mean is None:
                raise ValueError(
                    "detail < 1 or a detail threshold needs the sampler's first denoised estimate"
                )
            mean_sr = self.autoencoder.decode_latent(z_ref + mean)
            sr = mean_sr + self.detail_weight(lr, reference) * (sr - mean_sr)
        if self.lr_consistency:
            target = lr if project_onto is None else project_onto
            sr = project_to_lr(sr, target, sensor_degradation(self.scale, self.bands), DEFAULT_ITERATIONS)
        return sr

    def _pad(self, lr: Tensor) -> Tensor:
        """``lr`` padded at the bottom and right (edge values repeated) to sides the UNet can halve."""
        return pad_to_multiple(lr, self.size_multiple)

    def fuse(
        self,
        lrs: Tensor,
        dt_days: Sequence[float],
        seed: int,
        steps: int | None = None,
        config: FusionConfig | None = None,
        origin: tuple[int, int] = (0, 0),
    ) -> Tensor:
        """One HR image (1, C, H, W) from N revisits ``lrs`` (N, C, h, w) of one place, ``dt_days[i]`` =
        target date minus revisit ``i``'s: ``satsr.models.revisit_fusion.fuse_revisits`` with this model
        and its own fusion settings unless ``config`` is given (``steps`` overrides the config's)."""
        cond = revisit_conditioning(lrs, dt_days, self.scale)
        return fuse_revisits(self, cond, seed, (config or self.fusion).with_steps(steps), origin)
