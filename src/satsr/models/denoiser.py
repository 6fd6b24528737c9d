"""Conditional UNet: the raw network F_theta inside EDM preconditioning (Karras et al. 2022, Eq. 7).

``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, cond)`` is built in ``satsr.diffusion``; this module
is only F. The condition (for SR: the LR image at latent resolution) is concatenated to the input on
channels, as in SR3 (Saharia et al. 2022) and LDM super-resolution (Rombach et al. 2022, Sec. 4.4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.nn.layers import (
    Downsample,
    ResnetBlock,
    SelfAttention2d,
    SinusoidalMLP,
    Upsample,
    group_norm,
    level_widths,
)


class ConditionalUNet(nn.Module):
    """ADM-style UNet (Dhariwal & Nichol 2021) with scale-shift noise conditioning and optional dt_days.

    Each level has ``num_res_blocks`` ResnetBlocks on the way down and one more on the way up, with a
    skip connection from every down-path activation; the lowest resolution has a middle block with
    optional self-attention. With ``time_conditioning`` a second embedding MLP, structurally a clone of
    the noise one, embeds the signed revisit offset ``dt_days`` and is added to the noise embedding;
    its last layer starts at zero so a network fine-tuned from a single-image one starts unchanged.
    """

    def __init__(
        self,
        latent_channels: int = 4,  # channels of the noisy latent x_in and of the output
        cond_channels: int = 4,  # channels of the condition concatenated to x_in (0: unconditional)
        channels: Sequence[int] = (64, 128),  # feature width per resolution level
        num_res_blocks: int = 2,  # ResnetBlocks per level on the down path (one more on the up path)
        mid_attention: bool = False,  # self-attention in the lowest-resolution middle block
        attention_head_channels: int = 64,  # channels per attention head
        noise_features: int = 64,  # sinusoidal features of c_noise (and of dt_days)
        dropout: float = 0.0,  # dropout inside ResnetBlocks
        time_conditioning: bool = False,  # embed dt_days and add it to the noise embedding
        dt_days_scale: float = 1.0,  # dt_days multiplier before the sinusoids (periods 2*pi days .. ~170 y)
    ) -> None:
        super().__init__()
        channels = level_widths(channels, num_res_blocks)
        if cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0, got {cond_channels}")
        self.latent_channels = latent_channels
        self.cond_channels = cond_channels
        self.size_multiple = 2 ** (len(channels) - 1)
        self.time_conditioning = time_conditioning
        emb_channels = 4 * channels[0]
        self.noise_embed = SinusoidalMLP(noise_features, emb_channels)
        self.dt_embed: SinusoidalMLP | None = None
        if time_conditioning:
            self.dt_embed = SinusoidalMLP(noise_features, emb_channels, input_scale=dt_days_scale)
            nn.init.zeros_(self.dt_embed.last.weight)
            nn.init.zeros_(self.dt_embed.last.bias)

        self.conv_in = nn.Conv2d(latent_channels + cond_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        skip_widths = [channels[0]]
        ch = channels[0]
        for level, width in enumerate(channels):
            for _ in range(num_res_blocks):
                self.down.append(ResnetBlock(ch, width, emb_channels, dropout))
                ch = width
                skip_widths.append(ch)
            if level < len(channels) - 1:
                self.down.append(Downsample(ch))
                skip_widths.append(ch)
        self.mid1 = ResnetBlock(ch, ch, emb_channels, dropout)
        self.mid_attn: nn.Module = (
            SelfAttention2d(ch, attention_head_channels) if mid_attention else nn.Identity()
        )
        self.mid2 = ResnetBlock(ch, ch, emb_channels, dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(len(channels))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResnetBlock(ch + skip_widths.pop(), channels[level], emb_channels, dropout))
                ch = channels[level]
            if level > 0:
                self.up.append(Upsample(ch))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, latent_channels, 3, padding=1)
        # Zero output so that F starts at 0 and D(x; sigma) starts at c_skip * x (Karras et al. 2022, App. B).
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None = None, dt_days: Tensor | None = None
    ) -> Tensor:
        """F(x_in, c_noise, cond, dt_days) with the shape of ``x_in``.

        x_in: (B, latent_channels, h, w), h and w multiples of 2**(levels-1); c_noise: (B,) or scalar
        noise conditioning (EDM: ln(sigma)/4); cond: (B, cond_channels, h, w); dt_days: (B,) or scalar
        signed days between the condition's acquisition and the target, only with ``time_conditioning``.
        """
        x = self._concat_condition(x_in, cond)
        emb = self.noise_embed(_per_sample(c_noise, x_in.shape[0], "c_noise"))
        if self.dt_embed is not None:
            if dt_days is None:
                raise ValueError("time_conditioning=True: dt_days (signed days) is required")
            emb = emb + self.dt_embed(_per_sample(dt_days, x_in.shape[0], "dt_days"))
        elif dt_days is not None:
            raise ValueError("dt_days was given but the network was built with time_conditioning=False")

        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResnetBlock) else block(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(block, ResnetBlock) else block(h)
        out: Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out

    def _concat_condition(self, x_in: Tensor, cond: Tensor | None) -> Tensor:
        if x_in.ndim != 4 or x_in.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected x_in of shape (B, {self.latent_channels}, h, w), got {tuple(x_in.shape)}"
            )
        h, w = x_in.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(
                f"x_in height and width must be multiples of {self.size_multiple} "
                f"(2**(levels-1)); got {h}x{w}: pad or crop the latent"
            )
        if self.cond_channels == 0:
            if cond is not None:
                raise ValueError("cond was given but the network was built with cond_channels=0")
            return x_in
        expected = (x_in.shape[0], self.cond_channels, h, w)
        if cond is None or tuple(cond.shape) != expected:
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(
                f"cond must have shape {expected} (batch and size of x_in, no resizing is done), got {got}"
            )
        return torch.cat([x_in, cond.to(x_in.dtype)], dim=1)


def _per_sample(values: Tensor, batch: int, name: str) -> Tensor:
    """Broadcast a scalar or (B,) tensor to (B,)."""
    if values.ndim == 0:
        return values.expand(batch)
    if values.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or of shape ({batch},), got {tuple(values.shape)}")
    return values
