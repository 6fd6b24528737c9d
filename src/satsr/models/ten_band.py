"""All ten 10 m + 20 m Sentinel-2 bands on one grid at 10, 5 or 2.5 m (``s2-10band``).

The input is the ten bands on the 10 m grid, the 20 m bands as their 20 m pixels repeated 2 x 2 (how
``satsr.io.inputs`` stacks bands of different resolutions: exact, nothing interpolated), so the whole
scene pipeline (windows, nodata, resume, outputs) runs as for one-grid inputs. Windows start on the
20 m grid (``GRID_MULTIPLE``); the 2 x 2 mean of a window's 20 m bands gives back their native pixels.

Two stages, each measured in the model card:

1. ``GuidedSR`` sharpens the six 20 m bands x2 with the four 10 m bands as guide (the DSen2 idea):
   every band at 10 m, the product of ``--scale 1``. With ``octave_fit`` its detail and high-pass
   injection's are mixed per band with weights fitted one octave down for each window
   (``satsr.models.guided.octave_fitted``), so a place unlike the training places gets no more of the
   network's detail than its own bands bear out.
2. At x4 the 10 m bands go through the RGBN model (``ResidualSR``, the weights of ``s2-rgbn-x4-fast``),
   and the 20 m bands, now at 10 m, take the detail that model added, weighted by how each 20 m band's
   detail follows the 10 m bands' one octave down: weights fitted per window by least squares between
   stage 1's detail (10 m against 20 m) and the 10 m bands' own (10 m against 20 m), as high-pass
   injection does, then applied one octave finer. ``--scale 2`` is the 2 x 2 mean of the x4 result.

LR consistency: every band is back-projected (``satsr.models.consistency.project_to_lr``, the sensor's
MTF degradation) onto its own input grid, the 10 m bands onto the 10 m input, the 20 m bands onto the
20 m input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.data.degradation import wald_degrade
from satsr.io.bands import S2_20M, S2_BANDS, S2_RGBN
from satsr.models.consistency import project_to_lr
from satsr.models.fast import ResidualSR
from satsr.models.guided import GuidedSR, octave_fitted
from satsr.nn.blocks import bicubic_upscale

#: The bands in, and out: the 10 m and 20 m bands in band-number order (B02 ... B8A B11 B12).
TEN_BANDS = tuple(name for name, band in S2_BANDS.items() if band.gsd_m in (10.0, 20.0))
#: Scales the model serves, relative to the 10 m grid.
TEN_BAND_SCALES = (1, 2, 4)
#: Windows start and end on this many 10 m pixels: the 20 m grid.
GRID_MULTIPLE = 2


class TenBandSR(nn.Module):
    """``(B, 10, H, W)`` reflectance on the 10 m grid (``TEN_BANDS`` order, 20 m bands repeated 2 x 2)
    -> ``(B, 10, H * s, W * s)`` for ``scale`` s in ``TEN_BAND_SCALES``."""

    def __init__(
        self,
        guided: dict,  # GuidedSR's constructor arguments (stage 1)
        rgbn: dict,  # ResidualSR's constructor arguments (stage 2, the 10 m bands x4)
        scale: int = 4,  # the default scale
        lr_consistency: bool = True,  # back-project every band onto its input grid
        octave_fit: bool = False,  # stage 1 through ``octave_fitted`` (the network and injection, fitted)
    ) -> None:
        super().__init__()
        self.guided = GuidedSR(**guided)
        self.rgbn = ResidualSR(**rgbn)
        if self.guided.guide_bands != S2_RGBN or self.guided.bands != S2_20M or self.guided.scale != 2:
            raise ValueError("the guided stage must sharpen the 20 m bands x2 with the 10 m bands")
        if self.rgbn.scale != 4:
            raise ValueError(f"the RGBN stage must be a x4 model, got x{self.rgbn.scale}")
        if scale not in TEN_BAND_SCALES:
            raise ValueError(f"scale must be one of {TEN_BAND_SCALES}, got {scale}")
        self.scale, self.lr_consistency, self.octave_fit = scale, lr_consistency, octave_fit
        self.fine_index = [TEN_BANDS.index(b) for b in S2_RGBN]
        self.coarse_index = [TEN_BANDS.index(b) for b in S2_20M]

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The 10 m bands ``(B, 4, H, W)`` and the 20 m bands on their own grid ``(B, 6, H / 2, W / 2)``."""
        if x.shape[1] != len(TEN_BANDS):
            raise ValueError(f"expected the ten bands {', '.join(TEN_BANDS)}, got {x.shape[1]} channels")
        if x.shape[-2] % GRID_MULTIPLE or x.shape[-1] % GRID_MULTIPLE:
            raise ValueError(
                f"the 10 m grid's sides must be even (whole 20 m pixels), got {tuple(x.shape[-2:])}"
            )
        return x[:, self.fine_index], F.avg_pool2d(x[:, self.coarse_index], GRID_MULTIPLE)

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        scale = self.scale if scale is None else int(scale)
        if scale not in TEN_BAND_SCALES:
            raise ValueError(f"scale must be one of {TEN_BAND_SCALES}, got {scale}")
        fine, coarse = self.split(x)
        # The 20 m bands at 10 m.
        sharpened = octave_fitted(self.guided, fine, coarse) if self.octave_fit else self.guided(fine, coarse)
        if self.lr_consistency:
            sharpened = project_to_lr(sharpened, coarse, lambda hr: wald_degrade(hr, 2, S2_20M))
        if scale == 1:
            return self._merge(fine, sharpened)
        fine_sr = self.rgbn(fine)
        coarse_sr = bicubic_upscale(sharpened, 4) + _injected_detail(fine, sharpened, coarse, fine_sr)
        if self.lr_consistency:
            fine_sr = project_to_lr(fine_sr, fine, lambda hr: wald_degrade(hr, 4, S2_RGBN))
            coarse_sr = project_to_lr(coarse_sr, coarse, lambda hr: wald_degrade(hr, 8, S2_20M))
        out = self._merge(fine_sr, coarse_sr)
        return F.avg_pool2d(out, 2) if scale == 2 else out

    def _merge(self, fine: Tensor, coarse: Tensor) -> Tensor:
        out = torch.empty(
            fine.shape[0], len(TEN_BANDS), *fine.shape[-2:], dtype=fine.dtype, device=fine.device
        )
        out[:, self.fine_index], out[:, self.coarse_index] = fine, coarse
        return out


def _injected_detail(fine: Tensor, sharpened: Tensor, coarse: Tensor, fine_sr: Tensor) -> Tensor:
    """The 20 m bands' detail at x4 of the 10 m grid: the detail the RGBN model added to the 10 m bands,
    ``fine_sr - up4(fine)``, weighted per image by the least-squares fit of stage 1's detail
    (``sharpened - up2(coarse)``) on the 10 m bands' detail one octave down (``fine - up2(fine at 20 m)``)."""
    fine_detail = fine - bicubic_upscale(wald_degrade(fine, 2, S2_RGBN), 2)
    coarse_detail = sharpened - bicubic_upscale(coarse, 2)
    added = fine_sr - bicubic_upscale(fine, 4)
    out = []
    for x, y, d in zip(fine_detail.double(), coarse_detail.double(), added.double(), strict=True):
        design = x.reshape(x.shape[0], -1).T  # (pixels, 4)
        weights = torch.linalg.lstsq(design, y.reshape(y.shape[0], -1).T).solution  # (4, 6)
        out.append(torch.einsum("gc,ghw->chw", weights, d))
    return torch.stack(out).to(fine.dtype)


def ten_band_config(
    guided: dict, rgbn: dict, summary: str, lr_consistency: bool = True, octave_fit: bool = True
) -> dict:
    """A ``config.json`` for ``TenBandSR`` from its stages' configs (their descriptive keys dropped)."""
    drop = ("architecture", "summary")
    return {
        "architecture": "TenBandSR", "bands": list(TEN_BANDS), "scale": 4,
        "guided": {k: v for k, v in guided.items() if k not in drop},
        "rgbn": {k: v for k, v in rgbn.items() if k not in (*drop, "bands")},
        "lr_consistency": lr_consistency, "octave_fit": octave_fit, "summary": summary,
    }  # fmt: skip
