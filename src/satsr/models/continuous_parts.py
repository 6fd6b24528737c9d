"""The parts of E2DiffSR (Wu et al.) that ``satsr.models.continuous.ContinuousSR`` assembles: the
differential-prior encoder and decoder (Sec. III-B), the scale-modulated SR branch (Eqs. 3-5) and the
small UNet that generates the prior from the LR (Sec. III-C)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.models.implicit import FeatureRefinementUnit
from satsr.nn.layers import (
    Downsample,
    ResnetBlock,
    SinusoidalMLP,
    Upsample,
    downsampling_ladder,
    group_norm,
    level_widths,
)


class DPEncoder(nn.Module):
    """Residual groups with a stride-2 downsampling after all but the last (Wu et al., Sec. III-B1).

    (B, in_channels, H, W) -> (B, out_channels, ceil(H / f), ceil(W / f)), f = 2**(len(channels) - 1).
    """

    def __init__(
        self, in_channels: int, out_channels: int, channels: Sequence[int], num_res_blocks: int = 1
    ) -> None:
        super().__init__()
        widths = level_widths(channels, num_res_blocks)
        self.downsampling_factor = 2 ** (len(widths) - 1)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.body = downsampling_ladder(widths, num_res_blocks)
        ch = widths[-1]
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(x)))))
        return out


class DPDecoder(nn.Module):
    """Mirror of ``DPEncoder``: a latent -> features ``[h_1, ..., h_L]``, ``h_1`` at the latent size and
    each next one twice as large (Wu et al., Eq. 2). Widths are the encoder's, reversed."""

    def __init__(self, latent_channels: int, channels: Sequence[int], num_res_blocks: int = 1) -> None:
        super().__init__()
        widths = level_widths(channels, num_res_blocks)[::-1]
        self.out_channels = widths
        self.conv_in = nn.Conv2d(latent_channels, widths[0], 3, padding=1)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        ch = widths[0]
        for i, width in enumerate(widths):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(ch, width))
                ch = width
            self.levels.append(nn.Sequential(*blocks))
            if i < len(widths) - 1:
                self.ups.append(Upsample(ch, widths[i + 1]))
                ch = widths[i + 1]

    def forward(self, z: Tensor) -> list[Tensor]:
        h, features = self.conv_in(z), []
        for i, level in enumerate(self.levels):
            h = level(h)
            features.append(h)
            if i < len(self.ups):
                h = self.ups[i](h)
        return features


class ScaleCoefficients(nn.Module):
    """``(alpha_1, alpha_2)`` per refinement unit from an MLP of the scale (Eq. 3), each pair mapped to
    ``|alpha| / sqrt(alpha_1^2 + alpha_2^2 + eps)`` (Eq. 4). Returns shape (units, 2)."""

    def __init__(self, units: int, hidden: int = 64, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.mlp = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, 2 * units))

    def forward(self, scale: float) -> Tensor:
        ref = next(self.parameters())
        alphas = self.mlp(torch.tensor([[scale]], dtype=ref.dtype, device=ref.device)).view(-1, 2)
        return alphas.abs() / torch.sqrt(alphas.square().sum(dim=1, keepdim=True) + self.eps)


class SRBranch(nn.Module):
    """LR-size feature extractor: shallow 3x3 conv, refinement units, 3x3 conv, global skip (Sec. III-B4).

    With ``prior_channels`` (the decoder's widths) a modulation layer precedes unit ``i``:
    ``f <- alpha_1 f + alpha_2 Conv3x3(resize(h_i))`` (Eq. 5; antialiased bicubic resize to LR size).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_units: int,
        blocks_per_unit: int,
        prior_channels: Sequence[int] | None = None,
        channel_attention: bool = False,
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.units = nn.ModuleList(
            FeatureRefinementUnit(channels, blocks_per_unit, channel_attention) for _ in range(num_units)
        )
        self.tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.prior_convs: nn.ModuleList | None = None
        self.coefficients: ScaleCoefficients | None = None
        if prior_channels is not None:
            if len(prior_channels) != num_units:
                raise ValueError(
                    f"one decoder level per refinement unit: {len(prior_channels)} levels, {num_units} units"
                )
            self.prior_convs = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1) for c in prior_channels)
            self.coefficients = ScaleCoefficients(num_units)

    def forward(self, x: Tensor, scale: float, prior: Sequence[Tensor] | None = None) -> Tensor:
        shallow = self.head(x)
        f = shallow
        alphas = None
        if prior is not None:
            if self.coefficients is None or self.prior_convs is None:
                raise ValueError("this SR branch was built without a prior (prior_channels=None)")
            alphas = self.coefficients(scale)
        for i, unit in enumerate(self.units):
            if prior is not None and alphas is not None and self.prior_convs is not None:
                # float32: the antialiased kernels have no bfloat16 version (bf16 autocast on CPU)
                h = F.interpolate(prior[i].float(), size=x.shape[-2:], mode="bicubic", antialias=True)
                f = alphas[i, 0] * f + alphas[i, 1] * self.prior_convs[i](h)
            f = unit(f)
        out: Tensor = shallow + self.tail(f)
        return out


class LatentDenoiser(nn.Module):
    """Small UNet on ``(z_t, c)`` conditioned on the timestep and the scale (Wu et al., Eq. 11).

    Both scalars get a sinusoidal embedding + MLP (Vaswani et al. 2017; Ho et al. 2020, App. B), summed
    and fed to every ResnetBlock by scale-shift norm. One skip per level. The output starts at zero.
    """

    def __init__(
        self,
        latent_channels: int = 4,  # channels of z_t and of the output
        cond_channels: int = 4,  # channels of the condition c, concatenated to z_t
        channels: Sequence[int] = (32, 64),  # width per level
        num_res_blocks: int = 1,  # ResnetBlocks per level and path
        embed_features: int = 32,  # sinusoidal features of t and of s
    ) -> None:
        super().__init__()
        widths = level_widths(channels, num_res_blocks)
        self.size_multiple = 2 ** (len(widths) - 1)
        emb = 4 * widths[0]
        self.t_embed = SinusoidalMLP(embed_features, emb)
        self.s_embed = SinusoidalMLP(embed_features, emb)
        self.conv_in = nn.Conv2d(latent_channels + cond_channels, widths[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        ch = widths[0]
        for level, width in enumerate(widths):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(ch, width, emb))
                ch = width
            self.down.append(nn.ModuleList(blocks))
            if level < len(widths) - 1:
                self.downsample.append(Downsample(ch))
        self.mid = ResnetBlock(ch, ch, emb)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(widths))):
            if level < len(widths) - 1:
                self.upsample.append(Upsample(ch, widths[level]))
                ch = widths[level]
            blocks = [ResnetBlock(ch + widths[level], widths[level], emb)]
            blocks += [ResnetBlock(widths[level], widths[level], emb) for _ in range(num_res_blocks - 1)]
            self.up.append(nn.ModuleList(blocks))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default

    def forward(self, z_t: Tensor, t: Tensor, scale: Tensor, cond: Tensor) -> Tensor:
        """(B, latent, h, w) from z_t and cond of that size (h, w multiples of ``size_multiple``),
        t and scale of shape (B,)."""
        if z_t.shape[-2] % self.size_multiple or z_t.shape[-1] % self.size_multiple:
            raise ValueError(
                f"latent sides must be multiples of {self.size_multiple}, got {tuple(z_t.shape)}"
            )
        emb = self.t_embed(t.to(z_t.dtype)) + self.s_embed(scale.to(z_t.dtype))
        h, skips = self.conv_in(torch.cat([z_t, cond], dim=1)), []
        for level, blocks in enumerate(self.down):
            for block in blocks:  # type: ignore[attr-defined]  # a ModuleList of ResnetBlocks
                h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up):
            if i > 0:
                h = self.upsample[i - 1](h)
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:  # type: ignore[attr-defined]
                h = block(h, emb)
        out: Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out
