"""Continuous-scale SR parts at LR size: IMDB feature refinement and the implicit pixel-shuffle upsampler.

* ``IMDB``: information multi-distillation block (Hui et al. 2019, "Lightweight image super-resolution
  with information multi-distillation network", Fig. 2), grouped four to a ``FeatureRefinementUnit``
  with a 1x1 fusion of all block outputs (E2DiffSR, Wu et al., Fig. 3).
* ``ContinuousUpsampler``: E2DiffSR's CSUM (Sec. III-B5, after SADN's global implicit function, Wu et al.
  2023): a pixel-shuffle pyramid of feature maps, bilinear samples at query coordinates, attention over
  the pyramid levels computed from the scale, and an MLP to pixels. Queries are explicit coordinates,
  so a tile of a scene can ask for exactly the output pixels of its part of the scene grid (LIIF's
  ``forward(features, coord, cell)`` contract, Chen et al. 2021).

Coordinates are continuous LR pixel coordinates ``(row, col)``: LR pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``, so its centre is ``(i + 0.5, j + 0.5)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Negative slope of IMDN's LeakyReLU.
IMDN_SLOPE = 0.05
#: Queries per pass of the upsampler's pixel MLP at inference (64 hidden channels: 64 MiB per layer).
INFERENCE_QUERIES = 2**18


def regular_grid(
    lr_size: tuple[int, int], out_size: tuple[int, int], device: torch.device | str | None = None
) -> Tensor:
    """``(out_h, out_w, 2)`` LR coordinates ``(row, col)`` of the centres of a regular output grid.

    Output pixel ``i`` of ``out_h`` has its centre at ``(i + 0.5) * h / out_h``: the sampling of
    ``F.interpolate(size=out_size, align_corners=False)``, so the bicubic base matches it exactly.
    """
    (h, w), (out_h, out_w) = lr_size, out_size
    rows = (torch.arange(out_h, dtype=torch.float64, device=device) + 0.5) * (h / out_h)
    cols = (torch.arange(out_w, dtype=torch.float64, device=device) + 0.5) * (w / out_w)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).float()


def output_size(lr_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(round(h * scale), round(w * scale))``: the output grid of an LR image at ``scale``."""
    return round(lr_size[0] * scale), round(lr_size[1] * scale)


def check_scale(scale: float) -> float:
    scale = float(scale)
    if not (math.isfinite(scale) and scale >= 1.0):
        raise ValueError(f"scale must be a finite number >= 1, got {scale}")
    return scale


def sample_at(
    x: Tensor, coords: Tensor, mode: str = "bilinear", lr_size: tuple[int, int] | None = None
) -> Tensor:
    """``x`` (B, C, h', w') interpolated at LR coordinates ``coords`` (B or 1, H, W, 2) -> (B, C, H, W).

    ``x`` spans the LR image of ``lr_size`` (default: its own size, i.e. ``x`` is at LR size; a pyramid
    level at ``2**k`` times the LR size passes the LR size). Values beyond the edge repeat the border
    (``padding_mode="border"``; for bicubic each tap is clamped, as in ``F.interpolate``).
    """
    if coords.ndim != 4 or coords.shape[-1] != 2 or coords.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"coords must be (B or 1, H, W, 2) (row, col); got {tuple(coords.shape)}")
    h, w = lr_size if lr_size is not None else x.shape[-2:]
    rows, cols = coords.to(x.dtype).unbind(-1)
    grid = torch.stack([2 * cols / w - 1, 2 * rows / h - 1], dim=-1).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


class ContrastChannelAttention(nn.Module):
    """IMDN's contrast-aware channel attention: a gate from per-channel std + mean (Hui et al. 2019, 3.2).

    The statistics are over the whole image, so a tile's output depends on the entire tile.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        stats = x.std(dim=(2, 3), keepdim=True, unbiased=False) + x.mean(dim=(2, 3), keepdim=True)
        out: Tensor = x * self.gate(stats)
        return out


class IMDB(nn.Module):
    """Information multi-distillation block: three conv steps each keep (distil) a quarter of the
    channels and refine the rest; a last conv; the four parts concatenated, fused by a 1x1 conv, plus x.
    """

    def __init__(self, channels: int, distill_ratio: float = 0.25, channel_attention: bool = False) -> None:
        super().__init__()
        distilled = max(1, round(channels * distill_ratio))
        if distilled >= channels:
            raise ValueError(f"distill_ratio {distill_ratio} leaves nothing to refine in {channels} channels")
        self.split = (distilled, channels - distilled)
        remaining = channels - distilled
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels, channels, 3, padding=1)]
            + [nn.Conv2d(remaining, channels, 3, padding=1) for _ in range(2)]
            + [nn.Conv2d(remaining, distilled, 3, padding=1)]
        )
        self.attention: nn.Module = (
            ContrastChannelAttention(4 * distilled) if channel_attention else nn.Identity()
        )
        self.fuse = nn.Conv2d(4 * distilled, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        parts, h = [], x
        for conv in self.convs[:-1]:
            kept, h = F.leaky_relu(conv(h), IMDN_SLOPE).split(self.split, dim=1)
            parts.append(kept)
        parts.append(self.convs[-1](h))
        out: Tensor = x + self.fuse(self.attention(torch.cat(parts, dim=1)))
        return out


class FeatureRefinementUnit(nn.Module):
    """FRU (Wu et al., Fig. 3): consecutive IMDBs whose outputs are fused by a 1x1 conv, plus the input."""

    def __init__(self, channels: int, num_blocks: int, channel_attention: bool = False) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"a refinement unit needs >= 1 IMDB, got {num_blocks}")
        self.blocks = nn.ModuleList(
            IMDB(channels, channel_attention=channel_attention) for _ in range(num_blocks)
        )
        self.compress = nn.Conv2d(num_blocks * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        outputs, h = [], x
        for block in self.blocks:
            h = block(h)
            outputs.append(h)
        out: Tensor = x + self.compress(torch.cat(outputs, dim=1))
        return out


class ContinuousUpsampler(nn.Module):
    """CSUM: LR features (B, C, h, w) + query coordinates -> (B, out_channels, H, W) values.

    Level ``k`` of the pyramid is at ``2**k`` times the LR size (conv + pixel shuffle from level
    ``k - 1``). Levels finer than needed (factor >= 2 * scale) get attention weight 0 and are not
    computed. The MLP sees the attention-weighted bilinear sample, the query's offset from the centre
    of its LR pixel, and the cell size ``1 / scale`` (as in LIIF); its last layer starts at zero.

    With ``detail_channels`` the MLP's first layer also takes ``detail``, a feature map on a finer grid
    than the LR (e.g. the differential prior's output-size level) sampled bilinearly at the queries:
    information that does not pass through the LR-size features, so it is not drawn in LR-pixel cells.
    Its weights start at zero, so adding the path to trained weights leaves their output unchanged.
    """

    def __init__(
        self,
        channels: int,  # channels of the LR features
        out_channels: int,  # channels of the output (bands)
        pyramid_channels: int = 16,  # channels of every pyramid level
        levels: int = 4,  # pyramid levels, factors 1, 2, 4, ... 2**(levels - 1)
        hidden: int = 64,  # width of the attention and pixel MLPs
        mlp_layers: int = 4,  # linear layers of the pixel MLP
        detail_channels: int = 0,  # channels of the fine ``detail`` input (0: none)
    ) -> None:
        super().__init__()
        if levels < 1 or mlp_layers < 1:
            raise ValueError(f"need >= 1 pyramid level and MLP layer, got {levels} and {mlp_layers}")
        self.levels = levels
        self.to_pyramid = nn.Conv2d(channels, pyramid_channels, 3, padding=1)
        self.expand = nn.ModuleList(
            nn.Sequential(nn.Conv2d(pyramid_channels, 4 * pyramid_channels, 3, padding=1), nn.PixelShuffle(2))
            for _ in range(levels - 1)
        )
        self.level_attention = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, levels))
        layers: list[nn.Module] = []
        width = pyramid_channels + 4  # + offset (2) + cell (2)
        for _ in range(mlp_layers - 1):
            layers += [nn.Conv2d(width, hidden, 1), nn.ReLU()]
            width = hidden
        last = nn.Conv2d(width, out_channels, 1)
        # Zero residual at the start: training starts from the bicubic base instead of from noise.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default
        self.mlp = nn.Sequential(*layers, last)
        self.detail: nn.Conv2d | None = None
        if detail_channels:
            first = self.mlp[0]
            assert isinstance(first, nn.Conv2d)
            self.detail = nn.Conv2d(detail_channels, first.out_channels, 1, bias=False)
            nn.init.zeros_(self.detail.weight)

    def used_levels(self, scale: float) -> int:
        """Number of pyramid levels with factor < 2 * scale (at least 1, at most ``levels``)."""
        return max(1, min(self.levels, math.ceil(math.log2(check_scale(scale)) - 1e-9) + 1))

    def level_weights(self, scale: float) -> Tensor:
        """Softmax attention over the used pyramid levels (0 for the others), shape (levels,)."""
        ref = next(self.level_attention.parameters())
        logits = self.level_attention(torch.tensor([[scale]], dtype=ref.dtype, device=ref.device))[0]
        unused = torch.arange(self.levels, device=ref.device) >= self.used_levels(scale)
        return torch.softmax(logits.masked_fill(unused, float("-inf")), dim=0)

    def forward(self, features: Tensor, coords: Tensor, scale: float, detail: Tensor | None = None) -> Tensor:
        """Values at ``coords`` (B or 1, H, W, 2); ``detail`` (B, detail_channels, h', w') spans the LR
        image on any grid (None: none, as if zero)."""
        weights = self.level_weights(scale)
        lr_size = (features.shape[-2], features.shape[-1])
        level = self.to_pyramid(features)
        fused = weights[0] * sample_at(level, coords)
        for k in range(1, self.used_levels(scale)):
            level = self.expand[k - 1](level)
            fused = fused + weights[k] * sample_at(level, coords, lr_size=lr_size)
        coords = coords.to(fused.dtype).expand(fused.shape[0], -1, -1, -1)
        offset = (coords - coords.floor() - 0.5).permute(0, 3, 1, 2)
        cell = offset.new_full(offset.shape, 1.0 / scale)
        inputs = torch.cat([fused, offset, cell], dim=1)
        extra = None
        if detail is not None:
            if self.detail is None:
                raise ValueError("this upsampler was built without a detail input (detail_channels=0)")
            extra = sample_at(detail.to(fused.dtype), coords, lr_size=lr_size)
        if torch.is_grad_enabled():
            return self._mlp(inputs, extra)
        # Inference: the MLP's hidden activations over every query dominate the memory, so the queries
        # go through it a band of rows at a time (the result is the same: the MLP is per pixel).
        rows = max(1, INFERENCE_QUERIES // (inputs.shape[0] * inputs.shape[-1]))
        parts = inputs.split(rows, dim=2)
        extras = extra.split(rows, dim=2) if extra is not None else [None] * len(parts)
        return torch.cat([self._mlp(p, e) for p, e in zip(parts, extras, strict=True)], dim=2)

    def _mlp(self, inputs: Tensor, detail: Tensor | None) -> Tensor:
        if detail is None or self.detail is None:
            out: Tensor = self.mlp(inputs)
            return out
        hidden = self.mlp[0](inputs) + self.detail(detail)
        out = self.mlp[1:](hidden)
        return out
