"""Evaluating the sharpening of Sentinel-2's 20 m bands by its 10 m bands (DSen2's protocol).

The protocol (Lanaras et al. 2018, Sec. 4): every band is degraded one octave by Wald's protocol (the 10 m
bands to 20 m, the 20 m bands to 40 m), a method sharpens the 40 m bands with the 20 m guide, and the
result is compared with the real 20 m bands (``satsr.data.pairs.dsen2_triplet``). The simple baseline a
learned method must beat clearly, ``satsr.models.guided.high_pass_injection``, is a least-squares fit of
each band's detail on the guide's detail one octave further down, applied to the guide's own detail.
"""

from __future__ import annotations

import torch
from torch import Tensor

from satsr.evaluation.metrics import ergas, psnr, sam


def band_scores(sr: Tensor, hr: Tensor, scale: int) -> dict[str, Tensor]:
    """Per-band RMSE and PSNR (reflectance, data range 1), shape (B, C), and SAM (degrees) and ERGAS per
    image, shape (B,)."""
    rmse = ((sr.double() - hr.double()) ** 2).mean(dim=(2, 3)).sqrt()
    per_band = torch.stack([psnr(sr[:, [c]], hr[:, [c]]) for c in range(sr.shape[1])], dim=1)
    return {"rmse": rmse, "psnr": per_band, "sam": sam(sr, hr), "ergas": ergas(sr, hr, scale)}
