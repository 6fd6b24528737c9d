"""KL-regularised convolutional autoencoder, the first stage of latent diffusion (Rombach et al. 2022, 3.1).

The encoder maps a (B, C, H, W) image to a diagonal Gaussian posterior over a (B, latent, H/f, W/f)
latent, f = 2**(len(channels) - 1); the decoder maps a latent back to the image. For 4x SR of
Sentinel-2 with f = 4 the latent of an HR patch has exactly the size of its LR patch.

With ``shortcut=True`` both halves learn residuals over parameter-free space-to-channel shortcuts
(residual autoencoding, Chen et al. 2024, "Deep Compression Autoencoder", Sec. 3.1): the latent mean is
the input pixel-unshuffled and averaged over channel groups (the per-band mean over f x f pixels when
latent_channels == in_channels) plus the encoder's output, and the image is the latent repeated over
channel groups and pixel-shuffled (nearest upsampling) plus the decoder's output. The learned parts start
at zero, so training starts from a block-average codec instead of from noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.nn.layers import (
    ResnetBlock,
    SelfAttention2d,
    Upsample,
    downsampling_ladder,
    group_norm,
    level_widths,
    register_band_statistics,
)

#: Bounds on the encoder's log-variance, as in Rombach et al.'s implementation, so exp() stays finite.
LOGVAR_RANGE = (-30.0, 20.0)


class DiagonalGaussian:
    """A diagonal Gaussian N(mean, exp(logvar)) per latent element (Kingma & Welling 2014)."""

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} differ in shape")
        self.mean = mean
        self.logvar = logvar.clamp(*LOGVAR_RANGE)
        self.std = torch.exp(0.5 * self.logvar)

    @classmethod
    def from_moments(cls, moments: Tensor) -> DiagonalGaussian:
        """Split (B, 2C, h, w) encoder output into mean and log-variance along channels."""
        mean, logvar = moments.chunk(2, dim=1)
        return cls(mean, logvar)

    def sample(self, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        """Reparameterised sample mean + std * eps; eps from ``noise`` if given, else from ``generator``."""
        if noise is None:
            noise = torch.randn(
                self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
            )
        elif noise.shape != self.mean.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != posterior shape {tuple(self.mean.shape)}")
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) summed over all but the batch dimension, shape (B,) (Kingma & Welling 2014, B)."""
        kl = 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(dim=1)


class _Encoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        num_res_blocks: int,
        attention: bool,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = downsampling_ladder(channels, num_res_blocks)
        ch = channels[-1]
        self.mid = _mid_block(ch, attention)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mid(self.down(self.conv_in(x)))
        out: Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out


class _Decoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        num_res_blocks: int,
        attention: bool,
    ) -> None:
        super().__init__()
        ch = channels[-1]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.mid = _mid_block(ch, attention)
        layers: list[nn.Module] = []
        for level in reversed(range(len(channels))):
            # One block more than the encoder per level, as in Rombach et al.'s decoder.
            for _ in range(num_res_blocks + 1):
                layers.append(ResnetBlock(ch, channels[level]))
                ch = channels[level]
            if level > 0:
                layers.append(Upsample(ch, channels[level - 1]))
                ch = channels[level - 1]
        self.up = nn.Sequential(*layers)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.up(self.mid(self.conv_in(z)))
        out: Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out


def _mid_block(channels: int, attention: bool) -> nn.Sequential:
    attn: nn.Module = SelfAttention2d(channels) if attention else nn.Identity()
    return nn.Sequential(ResnetBlock(channels, channels), attn, ResnetBlock(channels, channels))


class KLAutoencoder(nn.Module):
    """Convolutional VAE with a KL-regularised latent (Rombach et al. 2022, Sec. 3 and App. G).

    Inputs and outputs are in the caller's units (reflectance for Sentinel-2, [0, 1] for aerial RGB);
    with ``band_mean``/``band_std`` the model standardises per band inside ``encode`` and undoes it in
    ``decode``. ``normalize``/``denormalize`` expose the same transform, e.g. for an LR condition.
    """

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        in_channels: int = 4,  # bands of the image
        latent_channels: int = 4,  # channels of the latent
        channels: Sequence[int] = (64, 128, 128),  # feature width per resolution level
        num_res_blocks: int = 1,  # ResnetBlocks per encoder level (decoder uses one more)
        downsampling_factor: int = 4,  # spatial factor image -> latent; must be 2 ** (len(channels) - 1)
        mid_attention: bool = False,  # self-attention in the lowest-resolution middle blocks
        scaling_factor: float = 1.0,  # multiplies latents in encode_latent so diffusion sees ~unit variance
        band_mean: Sequence[float] | None = None,  # per-band mean used to standardise the input
        band_std: Sequence[float] | None = None,  # per-band std used to standardise the input
        shortcut: bool = False,  # residual autoencoding over space-to-channel shortcuts (module docstring)
    ) -> None:
        super().__init__()
        channels = level_widths(channels, num_res_blocks)
        if downsampling_factor != 2 ** (len(channels) - 1):
            raise ValueError(
                f"downsampling_factor {downsampling_factor} needs len(channels) == log2(factor) + 1 levels; "
                f"{len(channels)} levels give {2 ** (len(channels) - 1)}"
            )
        if scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be positive, got {scaling_factor}")
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsampling_factor = downsampling_factor
        self.scaling_factor = float(scaling_factor)
        register_band_statistics(self, in_channels, band_mean, band_std)
        self.encoder = _Encoder(in_channels, 2 * latent_channels, channels, num_res_blocks, mid_attention)
        self.decoder = _Decoder(latent_channels, in_channels, channels, num_res_blocks, mid_attention)
        self.shortcut = shortcut
        if shortcut:
            if (in_channels * downsampling_factor**2) % latent_channels:
                raise ValueError(
                    f"shortcut needs in_channels * factor^2 = {in_channels * downsampling_factor**2} "
                    f"to be a multiple of latent_channels = {latent_channels}"
                )
            for conv in (self.encoder.conv_out, self.decoder.conv_out):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default
            # Start with a small posterior std (exp(-4) ~ 0.02) so early samples do not drown the shortcut.
            nn.init.constant_(self.encoder.conv_out.bias[latent_channels:], -8.0)  # type: ignore[index]

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.band_mean) / self.band_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.band_std + self.band_mean

    def encode(self, x: Tensor) -> DiagonalGaussian:
        """Posterior q(z | x) for a (B, in_channels, H, W) image, H and W multiples of the factor."""
        _check_shape(x, self.in_channels, self.downsampling_factor, "image")
        x = self.normalize(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        if self.shortcut:
            unshuffled = F.pixel_unshuffle(x, self.downsampling_factor)
            mean = mean + unshuffled.unflatten(1, (self.latent_channels, -1)).mean(dim=2)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: Tensor) -> Tensor:
        """Image (B, in_channels, h*f, w*f) from an unscaled latent (B, latent_channels, h, w)."""
        _check_shape(z, self.latent_channels, 1, "latent")
        out = self.decoder(z)
        if self.shortcut:
            repeats = out.shape[1] * self.downsampling_factor**2 // self.latent_channels
            out = out + F.pixel_shuffle(z.repeat_interleave(repeats, dim=1), self.downsampling_factor)
        return self.denormalize(out)

    def forward(
        self, x: Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruction and posterior; decodes a posterior sample, or its mode if ``sample`` is False."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.decode(z), posterior

    def encode_latent(
        self, x: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Diffusion-space latent ``z * scaling_factor``; the posterior mode unless ``sample`` is True."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return z * self.scaling_factor

    def decode_latent(self, z_scaled: Tensor) -> Tensor:
        """Inverse of ``encode_latent``: decode ``z_scaled / scaling_factor``."""
        return self.decode(z_scaled / self.scaling_factor)


def _check_shape(x: Tensor, channels: int, multiple: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"expected a (B, {channels}, H, W) {what}, got shape {tuple(x.shape)}")
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(
            f"{what} height and width must be multiples of the downsampling factor {multiple}, "
            f"got {tuple(x.shape[-2:])}"
        )


class SpaceToDepth(nn.Module):
    """The lossless first stage: standardised bands, pixel-unshuffled by ``downsampling_factor``.

    A (B, C, H, W) image becomes a (B, C * f^2, H / f, W / f) latent holding every pixel, and decoding
    inverts it exactly, so the first stage caps nothing: the diffusion's output is limited by the
    denoiser alone. It is the parameter-free shortcut of ``KLAutoencoder(shortcut=True)`` with
    ``latent_channels = in_channels * f^2`` (Chen et al. 2024, Sec. 3.1) without the learned residual,
    and has the same interface (``encode_latent``, ``decode_latent``, ``normalize``).
    """

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        in_channels: int = 4,  # bands of the image
        downsampling_factor: int = 4,  # spatial factor image -> latent
        band_mean: Sequence[float] | None = None,  # per-band mean used to standardise the input
        band_std: Sequence[float] | None = None,  # per-band std used to standardise the input
        scaling_factor: float = 1.0,  # multiplies latents in encode_latent (diffusion sees ~unit variance)
    ) -> None:
        super().__init__()
        if downsampling_factor < 1:
            raise ValueError(f"downsampling_factor must be >= 1, got {downsampling_factor}")
        if scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be positive, got {scaling_factor}")
        self.in_channels = in_channels
        self.latent_channels = in_channels * downsampling_factor**2
        self.downsampling_factor = downsampling_factor
        self.scaling_factor = float(scaling_factor)
        register_band_statistics(self, in_channels, band_mean, band_std)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.band_mean) / self.band_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.band_std + self.band_mean

    def encode_latent(self, x: Tensor) -> Tensor:
        """(B, C * f^2, H / f, W / f) latent of a (B, C, H, W) image, H and W multiples of f."""
        _check_shape(x, self.in_channels, self.downsampling_factor, "image")
        return F.pixel_unshuffle(self.normalize(x), self.downsampling_factor) * self.scaling_factor

    def decode_latent(self, z_scaled: Tensor) -> Tensor:
        """The image of a latent: the exact inverse of ``encode_latent``."""
        _check_shape(z_scaled, self.latent_channels, 1, "latent")
        return self.denormalize(F.pixel_shuffle(z_scaled / self.scaling_factor, self.downsampling_factor))


#: First stages by the ``architecture`` key of their config (absent: a trained ``KLAutoencoder``).
FIRST_STAGES: dict[str, type[KLAutoencoder] | type[SpaceToDepth]] = {
    "KLAutoencoder": KLAutoencoder, "SpaceToDepth": SpaceToDepth,
}  # fmt: skip


def build_first_stage(config: dict) -> KLAutoencoder | SpaceToDepth:
    """The first stage a config describes: ``{"architecture": name, **constructor arguments}``."""
    kwargs = dict(config)
    name = kwargs.pop("architecture", "KLAutoencoder")
    if name not in FIRST_STAGES:
        raise ValueError(f"unknown first stage {name!r}; known: {', '.join(FIRST_STAGES)}")
    return FIRST_STAGES[name](**kwargs)
