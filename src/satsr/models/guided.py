"""Guided super-resolution of Sentinel-2's 20 m bands with its 10 m bands (the DSen2 idea, Lanaras et al.
2018): the 20 m bands are upsampled x2 and a residual CNN that also sees the 10 m bands predicts the detail
they lack, so red-edge, narrow-NIR and SWIR bands come out on the 10 m grid with the 10 m bands' edges.

Unlike DSen2, the network runs on the coarse grid: the guide is pixel-unshuffled onto it (every 10 m pixel
kept, as sub-pixel channels) and the output's sub-pixel phases are added to the bicubic phases of the
coarse bands (``BicubicPhases``) before one pixel shuffle, so no convolution runs at 10 m: a quarter of
the cost at the same receptive field in metres. Its last layer starts at zero, so an untrained network
is its base: bicubic upsampling, or ``high_pass_injection`` (the guide's detail, fitted per image one
octave down, added to it). Trained by Wald's protocol one octave down (``satsr.data.sources.s2_band_scenes``):
the 10 m bands seen at 20 m guide the 20 m bands seen at 40 m, and the real 20 m bands are the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.data.degradation import wald_degrade
from satsr.io.bands import S2_20M, S2_RGBN
from satsr.nn.blocks import BicubicPhases, ResBlock
from satsr.nn.layers import register_band_statistics


def bicubic_up(x: Tensor, scale: int) -> Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def _detail(x: Tensor, bands: Sequence[str], scale: int) -> Tensor:
    """What the sensor one octave coarser would not see: ``x`` minus the upsampling of its degradation."""
    return x - bicubic_up(wald_degrade(x, scale, bands), scale)


def high_pass_injection(
    guide: Tensor, coarse: Tensor, guide_bands: Sequence[str], bands: Sequence[str], scale: int = 2
) -> Tensor:
    """The baseline: ``up(coarse) + sum_k a_ck * detail(guide_k)``, the weights ``a_c`` (with an offset)
    fitted per image by least squares between the bands' detail and the guide's detail one octave down
    (the guide degraded to the bands' grid). Bands whose sides are not multiples of ``scale`` (so that
    they can be degraded once more) are padded by repeating their last row and column, then cropped."""
    return _on_whole_pixels(lambda g, c: _injected(g, c, guide_bands, bands, scale), guide, coarse, scale)


def _on_whole_pixels(
    run: Callable[[Tensor, Tensor], Tensor], guide: Tensor, coarse: Tensor, scale: int
) -> Tensor:
    """``run(guide, coarse)`` on bands whose sides are multiples of ``scale`` (so that they can be degraded
    once more): padded by repeating their last row and column (the guide alike), the result cropped."""
    h, w = coarse.shape[-2:]
    pad_h, pad_w = -h % scale, -w % scale
    if not (pad_h or pad_w):
        return run(guide, coarse)
    coarse = F.pad(coarse, (0, pad_w, 0, pad_h), mode="replicate")
    guide = F.pad(guide, (0, pad_w * scale, 0, pad_h * scale), mode="replicate")
    return run(guide, coarse)[..., : h * scale, : w * scale]


def _injected(
    guide: Tensor, coarse: Tensor, guide_bands: Sequence[str], bands: Sequence[str], scale: int
) -> Tensor:
    """``high_pass_injection`` on bands whose sides are multiples of ``scale``."""
    guide_low = wald_degrade(guide, scale, guide_bands)  # the guide on the bands' grid
    fitted = []
    for g, g_low, c in zip(guide.double(), guide_low.double(), coarse.double(), strict=True):
        x = _detail(g_low[None], guide_bands, scale)[0].reshape(len(guide_bands), -1)
        y = _detail(c[None], bands, scale)[0].reshape(len(bands), -1)
        design = torch.cat([x, torch.ones_like(x[:1])]).T  # (pixels, G + 1)
        weights = torch.linalg.lstsq(design, y.T).solution[:-1]  # (G, C): no offset added to the detail
        detail = torch.einsum("gc,ghw->chw", weights, _detail(g[None], guide_bands, scale)[0])
        fitted.append(bicubic_up(c[None], scale)[0] + detail)
    return torch.stack(fitted).to(coarse.dtype)


#: What ``GuidedSR`` adds its detail to: bicubic upsampling, or ``high_pass_injection`` (then the network
#: also sees the injected bands and learns what the linear fit gets wrong).
GUIDED_BASES = ("bicubic", "injection")


class GuidedSR(nn.Module):
    """(guide (B, G, H, W), coarse (B, C, H / s, W / s)) reflectance -> (B, C, H, W): ``bands`` on the guide's
    grid. ``band_mean`` / ``band_std`` hold the guide bands' statistics, then the coarse bands'."""

    band_mean: Tensor
    band_std: Tensor

    def __init__(
        self,
        guide_bands: Sequence[str] = S2_RGBN,  # the fine bands that guide (10 m)
        bands: Sequence[str] = S2_20M,  # the coarse bands super-resolved (20 m)
        scale: int = 2,  # grid ratio coarse / fine
        channels: int = 64,  # feature width of the body
        num_blocks: int = 8,  # residual blocks of the body
        band_mean: Sequence[float] | None = None,  # guide bands' then coarse bands' reflectance mean
        band_std: Sequence[float] | None = None,  # ... and standard deviation
        base: str = "bicubic",  # what the network adds its detail to: "bicubic" or "injection"
    ) -> None:
        super().__init__()
        if base not in GUIDED_BASES:
            raise ValueError(f"base must be one of {', '.join(GUIDED_BASES)}, got {base!r}")
        self.guide_bands, self.bands, self.scale, self.base_kind = (
            tuple(guide_bands),
            tuple(bands),
            scale,
            base,
        )
        guides, coarse = len(self.guide_bands), len(self.bands)
        register_band_statistics(self, guides + coarse, band_mean, band_std)
        inputs = guides * scale * scale + coarse * (1 + (scale * scale if base == "injection" else 0))
        self.head = nn.Conv2d(inputs, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(channels) for _ in range(num_blocks)])
        self.body_tail = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, coarse * scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # an untrained network is its base
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]  # a Conv2d made with bias has one
        self.base = BicubicPhases(coarse, scale)

    def forward(self, guide: Tensor, coarse: Tensor) -> Tensor:
        s, g = self.scale, len(self.guide_bands)
        if guide.shape[1] != g or coarse.shape[1] != len(self.bands):
            raise ValueError(
                f"expected {g} guide bands {self.guide_bands} and {len(self.bands)} bands {self.bands}, "
                f"got {guide.shape[1]} and {coarse.shape[1]}"
            )
        if guide.shape[-2:] != (coarse.shape[-2] * s, coarse.shape[-1] * s):
            raise ValueError(
                f"the guide's grid {tuple(guide.shape[-2:])} is not {s} x the bands' "
                f"{tuple(coarse.shape[-2:])}"
            )
        mean, std = self.band_mean, self.band_std
        fine = (guide - mean[:, :g]) / std[:, :g]
        x = (coarse - mean[:, g:]) / std[:, g:]
        parts = [F.pixel_unshuffle(fine, s), x]
        if self.base_kind == "injection":
            injected = high_pass_injection(guide, coarse, self.guide_bands, self.bands, s)
            base = F.pixel_unshuffle((injected - mean[:, g:]) / std[:, g:], s)
            parts.append(base)
        else:
            base = self.base(x)
        feat = self.head(torch.cat(parts, dim=1))
        feat = feat + self.body_tail(self.body(feat))
        out = F.pixel_shuffle(self.tail(feat) + base, s)
        return out * std[:, g:] + mean[:, g:]


#: Ridge weight of the octave fit toward the network alone, relative to the mean energy of the two details.
OCTAVE_FIT_RIDGE = 1e-3


def octave_fitted(network: GuidedSR, guide: Tensor, coarse: Tensor) -> Tensor:
    """``network``'s result made to fit the place: ``up(coarse) + a_c * d_net + b_c * d_inj`` per band ``c``,
    ``d_net`` the network's detail and ``d_inj`` that of ``high_pass_injection``, with ``(a_c, b_c)`` fitted
    per image by least squares one octave down (both methods run again on the guide and the bands degraded
    once more, their detail regressed on the bands' own), with a small ridge toward ``(1, 0)``.

    The same self-similarity as high-pass injection's, one level up: where a place's 20 m bands follow
    the 10 m bands less closely than the training places did (a smoother band, other land cover), the
    fit turns the network's detail down and the linear fit's up; where the network is right, it keeps it.
    Sides that are not even (so that the bands can be degraded once more) are padded by repeating the
    last row and column, then cropped."""
    return _on_whole_pixels(lambda g, c: _octave_fit(network, g, c), guide, coarse, network.scale)


def _octave_fit(network: GuidedSR, guide: Tensor, coarse: Tensor) -> Tensor:
    """``octave_fitted`` on bands whose sides are multiples of the network's scale."""
    s = network.scale
    guide_low = wald_degrade(guide, s, network.guide_bands)
    coarse_low = wald_degrade(coarse, s, network.bands)
    base, base_low = bicubic_up(coarse, s), bicubic_up(coarse_low, s)
    details = [network(guide, coarse) - base]
    details.append(high_pass_injection(guide, coarse, network.guide_bands, network.bands, s) - base)
    lows = [network(guide_low, coarse_low) - base_low]
    lows.append(high_pass_injection(guide_low, coarse_low, network.guide_bands, network.bands, s) - base_low)
    target = (coarse - base_low).double()
    x = torch.stack([d.double() for d in lows], dim=-1).flatten(2, 3)  # (B, C, pixels, 2)
    gram = x.transpose(-1, -2) @ x  # (B, C, 2, 2)
    ridge = OCTAVE_FIT_RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None] + 1e-20
    prior = torch.tensor([1.0, 0.0], dtype=torch.float64, device=coarse.device)
    rhs = (x.transpose(-1, -2) @ target.flatten(2)[..., None])[..., 0] + ridge[..., 0] * prior
    eye = torch.eye(2, dtype=torch.float64, device=coarse.device)
    weights = torch.linalg.solve(gram + ridge * eye, rhs).to(coarse.dtype)  # (B, C, 2)
    return base + weights[..., 0, None, None] * details[0] + weights[..., 1, None, None] * details[1]
