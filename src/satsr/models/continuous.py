"""E2DiffSR: continuous-scale SR guided by a differential prior from latent diffusion (Wu et al.).

Stage 1 (Sec. III-B): ``DPEncoder`` compresses what the HR image adds to its bicubic-upsampled LR into
a KL-regularised prior ``z`` (4 channels at 1/8 of the HR size). ``DPDecoder`` expands ``z`` into
features ``h_1`` (coarsest) .. ``h_4`` (HR size); an ``SRBranch`` at LR size refines LR features with
feature-refinement units, each preceded by a scale-modulated blend with one ``h_i`` (Eqs. 3-5), and the
``ContinuousUpsampler`` (``satsr.models.implicit``) renders any output grid. Not in the paper:
with ``prior_detail`` the prior's output-size level ``h_L`` also reaches the upsampler's pixel MLP
directly, at output resolution, instead of only through the LR-size SR branch.
Stage 2 (Sec. III-C): ``CondNet`` (the encoder's architecture on the upsampled LR alone) and a small
UNet ``LatentDenoiser`` generate ``z`` from the LR with a 4-step chain (``satsr.diffusion.unrolled``).

``ContinuousSR`` holds all of it (its parts are ``satsr.models.continuous_parts``); ``prior=False``
gives the SR branch and upsampler alone (the paper's Model-I-Retrained, a LIIF-like regression baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.defaults import DEFAULT_SCALE
from satsr.diffusion.noise import SeededNoise, mix_seed
from satsr.diffusion.unrolled import EpsFn, eps_from_x0, linear_betas, unrolled_reverse
from satsr.models.autoencoder import DiagonalGaussian
from satsr.models.consistency import DEFAULT_ITERATIONS
from satsr.models.continuous_parts import DPDecoder, DPEncoder, LatentDenoiser, SRBranch
from satsr.models.implicit import (
    ContinuousUpsampler,
    check_scale,
    output_size,
    regular_grid,
    sample_at,
)
from satsr.nn.layers import (
    register_band_statistics,
)

#: Largest scale a request may ask of a continuous-scale model, and the largest it was trained for.
MAX_SCALE = 10.0
TRAINED_MAX_SCALE = 8.0


class ContinuousSR(nn.Module):
    """E2DiffSR (or, with ``prior=False``, its regression baseline): LR (B, C, h, w) in [0, 1] at any real
    ``scale >= 1`` -> (B, C, round(h * scale), round(w * scale)), or values at explicit query coordinates.

    The upsampler predicts a residual over bicubic interpolation (sampled at the same coordinates), in
    band-normalised units. Diffusion runs on ``z * latent_scaling`` so that it sees ~unit variance.
    Sampling is deterministic given the seeds: the chain of Alg. 1 is run without extra noise.

    Tiling: ``render`` takes any query coordinates, so a tile can be asked for exactly its part of the
    scene's output grid (scene coordinates minus the tile's LR offset). The baseline (``prior=False``,
    no ``channel_attention``) is translation-equivariant in whole LR pixels: overlapping tiles agree to
    float precision beyond its receptive field (at most 4 * units * blocks_per_unit + 6 LR pixels: the
    IMDBs' 3x3 chains, head, tail, pyramid convs and the bicubic base; contributions fade much sooner).
    The prior is not: it lives on a 1/8 grid of each tile's own output and CondNet/DPDecoder use
    GroupNorm (tile-wide statistics), so tiles of the full model need overlap and blending.
    """

    band_mean: Tensor
    band_std: Tensor
    betas: Tensor

    def __init__(
        self,
        in_channels: int = 3,  # bands of the input and output
        channels: int = 48,  # width of the SR branch
        num_units: int = 4,  # feature refinement units (= decoder levels with a prior)
        blocks_per_unit: int = 4,  # IMDBs per unit (Fig. 3: 4; Sec. IV-B: 12)
        channel_attention: bool = False,  # IMDN's global contrast attention (tile-dependent output)
        pyramid_channels: int = 16,  # channels of the upsampler's pyramid levels
        pyramid_levels: int = 4,  # pyramid factors 1, 2, 4, 8
        mlp_hidden: int = 64,  # width of the upsampler's MLPs
        mlp_layers: int = 4,  # layers of the pixel MLP (the paper: 5)
        prior: bool = True,  # False: no encoder/decoder/diffusion (Model-I-Retrained baseline)
        latent_channels: int = 4,  # channels of the differential prior z
        encoder_channels: Sequence[int] = (16, 32, 64, 64),  # DPEncoder/CondNet widths; 4 levels = 1/8
        num_res_blocks: int = 1,  # ResnetBlocks per encoder/decoder level (the paper: 2)
        denoiser_channels: Sequence[int] = (32, 64),  # LatentDenoiser widths
        timesteps: int = 4,  # diffusion steps T
        beta_start: float = 0.99,  # beta_1
        beta_end: float = 0.1,  # beta_T
        latent_scaling: float = 1.0,  # diffusion-space latent = z * latent_scaling
        band_mean: Sequence[float] | None = None,  # per-band mean used to normalise
        band_std: Sequence[float] | None = None,  # per-band std used to normalise
        lr_consistency: bool = False,  # back-project every output onto its LR (``lr_correction``)
        prior_detail: bool = False,  # the prior's output-size level also feeds the upsampler's MLP
    ) -> None:
        super().__init__()
        register_band_statistics(self, in_channels, band_mean, band_std)
        self.lr_consistency = lr_consistency
        if latent_scaling <= 0:
            raise ValueError(f"latent_scaling must be positive, got {latent_scaling}")
        self.in_channels, self.prior, self.latent_scaling = in_channels, prior, float(latent_scaling)
        self.encoder: DPEncoder | None = None
        self.decoder: DPDecoder | None = None
        self.condnet: DPEncoder | None = None
        self.denoiser: LatentDenoiser | None = None
        prior_channels = None
        if prior:
            if len(encoder_channels) != num_units:
                raise ValueError(f"need one encoder level per unit: {len(encoder_channels)} != {num_units}")
            self.encoder = DPEncoder(2 * in_channels, 2 * latent_channels, encoder_channels, num_res_blocks)
            self.decoder = DPDecoder(latent_channels, encoder_channels, num_res_blocks)
            self.condnet = DPEncoder(in_channels, latent_channels, encoder_channels, num_res_blocks)
            self.denoiser = LatentDenoiser(latent_channels, latent_channels, denoiser_channels)
            self.register_buffer("betas", linear_betas(timesteps, beta_start, beta_end), persistent=False)
            prior_channels = self.decoder.out_channels
        if prior_detail and not prior:
            raise ValueError("prior_detail needs the prior (prior=True)")
        self.prior_detail = prior_detail
        self.sr_branch = SRBranch(
            in_channels, channels, num_units, blocks_per_unit, prior_channels, channel_attention
        )
        self.upsampler = ContinuousUpsampler(
            channels,
            in_channels,
            pyramid_channels,
            pyramid_levels,
            mlp_hidden,
            mlp_layers,
            detail_channels=prior_channels[-1] if prior_detail and prior_channels else 0,
        )

    @property
    def stochastic(self) -> bool:
        """True when outputs depend on seeds (the diffusion prior)."""
        return self.prior

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.band_mean) / self.band_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.band_std + self.band_mean

    def _check_lr(self, lr: Tensor) -> None:
        if lr.ndim != 4 or lr.shape[1] != self.in_channels:
            raise ValueError(f"expected LR of shape (B, {self.in_channels}, h, w), got {tuple(lr.shape)}")

    def upsampled(self, lr: Tensor, size: tuple[int, int]) -> Tensor:
        """Normalised bicubic upsampling of ``lr`` to ``size`` (the encoders' LR input)."""
        return F.interpolate(self.normalize(lr), size=size, mode="bicubic", align_corners=False)

    def encode(self, lr: Tensor, hr: Tensor) -> DiagonalGaussian:
        """Posterior over the differential prior ``z`` (Eq. 1). The encoder sees ``(HR - LR up, LR up)``,
        the paper's ``(HR, LR up)`` up to a fixed linear map of its first layer's input."""
        if self.encoder is None:
            raise ValueError("this model has no prior (prior=False)")
        self._check_lr(lr)
        up = self.upsampled(lr, (hr.shape[-2], hr.shape[-1]))
        return DiagonalGaussian.from_moments(self.encoder(torch.cat([self.normalize(hr) - up, up], dim=1)))

    def prior_features(self, z: Tensor, out_size: tuple[int, int]) -> list[Tensor]:
        """Decoder features ``h_1 .. h_L``, each cropped to its fraction of the output grid ``out_size``."""
        assert self.decoder is not None
        features = self.decoder(z)
        factors = [2 ** (len(features) - 1 - i) for i in range(len(features))]
        return [
            h[..., : math.ceil(out_size[0] / f), : math.ceil(out_size[1] / f)]
            for h, f in zip(features, factors, strict=True)
        ]

    def render(self, lr: Tensor, scale: float, coords: Tensor, z: Tensor | None = None) -> Tensor:
        """Values (B, C, H, W) at LR coordinates ``coords`` (B or 1, H, W, 2), unclamped, in input units.

        ``z`` is the prior (decoder units) for the output grid ``output_size(lr, scale)``; ``None`` runs
        the SR branch without it (the only choice with ``prior=False``; the paper's Model-I otherwise).
        """
        self._check_lr(lr)
        scale = check_scale(scale)
        x = self.normalize(lr)
        prior = None
        if z is not None:
            prior = self.prior_features(z, output_size((lr.shape[-2], lr.shape[-1]), scale))
        features = self.sr_branch(x, scale, prior)
        detail = prior[-1] if prior is not None and self.prior_detail else None
        residual = self.upsampler(features, coords.to(lr.device), scale, detail)
        return self.denormalize(sample_at(x, coords.to(lr.device), mode="bicubic") + residual)

    def condition(self, lr: Tensor, scale: float) -> Tensor:
        """CondNet(LR up) (Eq. 11): the stage-2 condition, trained towards ``z0 * latent_scaling``."""
        if self.condnet is None:
            raise ValueError("this model has no prior (prior=False)")
        cond: Tensor = self.condnet(self.upsampled(lr, output_size((lr.shape[-2], lr.shape[-1]), scale)))
        return cond

    def eps_fn(self, cond: Tensor, scale: float) -> EpsFn:
        """The noise predictor ``eps_theta(z_t, t, s, c)`` with ``c`` and ``s`` bound (Eq. 11).

        The UNet predicts the clean latent as ``c + UNet(z_t, t, s, c)``, turned into noise by Eq. 8, so
        an untrained UNet already yields ``z0 = c`` after the last step.
        """
        assert self.denoiser is not None
        denoiser, betas = self.denoiser, self.betas

        def eps(z_t: Tensor, t: int) -> Tensor:
            t_vec = torch.full((z_t.shape[0],), float(t), dtype=z_t.dtype, device=z_t.device)
            s_vec = torch.full((z_t.shape[0],), float(scale), dtype=z_t.dtype, device=z_t.device)
            return eps_from_x0(z_t, cond + denoiser(z_t, t_vec, s_vec, cond), t, betas)

        return eps

    def _padded(self, *latents: Tensor) -> list[Tensor]:
        """Latents padded at the bottom and right (edges repeated) to sides the UNet can halve."""
        assert self.denoiser is not None
        h, w = latents[0].shape[-2:]
        multiple = self.denoiser.size_multiple
        pad = (0, -w % multiple, 0, -h % multiple)
        return [F.pad(x, pad, mode="replicate") if any(pad) else x for x in latents]

    def predict_noise(self, cond: Tensor, z_t: Tensor, t: int, scale: float) -> Tensor:
        """``eps_theta(z_t, t, s, c)`` for any latent size (padded for the UNet, cropped back)."""
        h, w = z_t.shape[-2:]
        cond_p, z_p = self._padded(cond, z_t)
        return self.eps_fn(cond_p, scale)(z_p, t)[..., :h, :w]

    def reverse(self, cond: Tensor, z_T: Tensor, scale: float) -> Tensor:
        """All T reverse steps from ``z_T`` (Alg. 1, lines 8-11), diffusion units, differentiable.

        Latents whose sides the UNet cannot halve are padded (edges repeated) and cropped back.
        """
        if z_T.shape != cond.shape:
            raise ValueError(f"z_T {tuple(z_T.shape)} and the condition {tuple(cond.shape)} differ in shape")
        h, w = cond.shape[-2:]
        cond_p, z_p = self._padded(cond, z_T)
        return unrolled_reverse(self.eps_fn(cond_p, scale), z_p, self.betas)[..., :h, :w]

    def sample_prior(self, lr: Tensor, scale: float, seeds: Sequence[int] | None = None) -> Tensor:
        """A differential prior drawn for ``lr`` (Alg. 2), decoder units; item ``i`` fixed by ``seeds[i]``."""
        cond = self.condition(lr, scale)
        seeds = list(range(lr.shape[0])) if seeds is None else list(seeds)
        z_T = SeededNoise(seeds, cond.device).randn(cond.shape, cond.dtype)
        return self.reverse(cond, z_T, scale) / self.latent_scaling

    def forward(
        self,
        lr: Tensor,
        scale: float = DEFAULT_SCALE,
        seeds: Sequence[int] | None = None,
        coords: Tensor | None = None,
    ) -> Tensor:
        """SR of ``lr`` in [0, 1], clamped to [0, 1]: the regular grid ``output_size(lr, scale)`` or, with
        ``coords`` (B or 1, H, W, 2), the values at those LR coordinates (the prior is still drawn for the
        regular grid of ``lr``). Seeds (default ``0 .. B-1``) fix the prior; the baseline ignores them."""
        self._check_lr(lr)
        scale = check_scale(scale)
        size = output_size((lr.shape[-2], lr.shape[-1]), scale)
        z = self.sample_prior(lr, scale, seeds) if self.prior else None
        lr_size = (lr.shape[-2], lr.shape[-1])
        asked = regular_grid(lr_size, size, lr.device)[None] if coords is None else coords.to(lr.device)
        out = self.render(lr, scale, asked, z)
        if self.lr_consistency:  # the regular grid is rendered again only when not what was asked for
            grid = asked if coords is None else regular_grid(lr_size, size, lr.device)[None]
            on_grid = asked.shape[1:3] == grid.shape[1:3] and bool(torch.allclose(asked, grid, atol=1e-4))
            regular = out if on_grid else self.render(lr, scale, grid, z)
            out = out + sample_at(self.lr_correction(regular, lr, grid), asked, mode="bicubic")
        return out.clamp(0.0, 1.0)

    @staticmethod
    def lr_correction(sr: Tensor, lr: Tensor, grid: Tensor) -> Tensor:
        """Back-projection (``satsr.models.consistency``; the degradation: antialiased bicubic to the LR's
        size, as ``satsr.data.degradation.bicubic_degrade``) of ``sr``, on the regular output grid ``grid``,
        onto ``lr``, as one LR-sized correction. Each round adds the bicubic upsampling of
        ``lr - degrade(sr)``, so the rounds together add the bicubic upsampling of the sum of their
        residuals, which this returns. Sampled at any coordinates (``sample_at``, bicubic), it corrects the
        values there as it corrects the regular grid: a tile asked for its part of a scene's grid is
        corrected as the whole would be."""
        total = torch.zeros_like(lr)
        for _ in range(DEFAULT_ITERATIONS):
            residual = lr - F.interpolate(
                sr, size=lr.shape[-2:], mode="bicubic", antialias=True, align_corners=False
            )
            sr = sr + sample_at(residual, grid, mode="bicubic")
            total = total + residual
        return total

    def sample(
        self,
        lr: Tensor,
        seeds: Sequence[int],
        steps: int | None = None,
        origins: Sequence[tuple[int, int]] | None = None,
        scale: float = DEFAULT_SCALE,
        coords: Tensor | None = None,
    ) -> Tensor:
        """``forward`` with the sampling call of ``satsr.models.registry.Upscaler``: the chain has a fixed
        number of steps (``steps`` must be None or T); ``origins`` (tile offsets) are mixed into the seeds."""
        if steps is not None and self.prior and steps != len(self.betas):
            raise ValueError(f"this model samples with exactly {len(self.betas)} steps, got steps={steps}")
        if origins is not None:
            seeds = [mix_seed(s, o) for s, o in zip(seeds, origins, strict=True)]
        with torch.no_grad():
            out: Tensor = self(lr, scale, seeds, coords)
        return out
