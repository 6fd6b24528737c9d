"""Training the first stage of latent diffusion: the KL autoencoder (L1 + LPIPS on RGB + small KL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from satsr.evaluation.metrics import psnr
from satsr.io.bands import S2_DISPLAY_WHITE
from satsr.models.autoencoder import KLAutoencoder
from satsr.nn.lpips import LPIPS


def lpips_input(x: Tensor, rgb: Sequence[int], white: float = S2_DISPLAY_WHITE) -> Tensor:
    """RGB channels of a reflectance batch scaled to [-1, 1] (clamped) for LPIPS."""
    return (x[:, list(rgb)] / white).clamp(0, 1) * 2 - 1


class AutoencoderModule(L.LightningModule):
    """Fits a ``KLAutoencoder`` to HR patches; batches are ``(lr, hr)`` pairs and only ``hr`` is used.

    Loss (Rombach et al. 2022, App. G, without the adversarial term): ``L1 + lpips_weight * LPIPS(RGB)
    + kl_weight * KL``. The decoder sees posterior samples during training and the mode at validation.
    """

    def __init__(
        self,
        in_channels: int = 4,  # bands
        latent_channels: int = 4,  # latent channels
        channels: Sequence[int] = (64, 128, 128),  # width per level; 3 levels = factor 4
        num_res_blocks: int = 1,  # ResnetBlocks per encoder level
        band_mean: Sequence[float] | None = None,  # per-band standardisation (reflectance)
        band_std: Sequence[float] | None = None,
        rgb: Sequence[int] = (2, 1, 0),  # channels fed to LPIPS as R, G, B (B04, B03, B02 of B02-B08)
        lpips_weight: float = 0.1,  # weight of the perceptual term
        kl_weight: float = 1e-6,  # weight of the KL term (per element, summed)
        lr: float = 4e-4,  # AdamW learning rate
        shortcut: bool = True,  # residual autoencoding (see KLAutoencoder)
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.autoencoder = KLAutoencoder(
            in_channels, latent_channels, channels, num_res_blocks, 2 ** (len(channels) - 1),
            band_mean=band_mean, band_std=band_std, shortcut=shortcut,
        )  # fmt: skip
        self.lpips = LPIPS()  # frozen, eval mode
        self.rgb, self.lpips_weight, self.kl_weight, self.lr = tuple(rgb), lpips_weight, kl_weight, lr

    @property
    def network(self) -> KLAutoencoder:
        """What ``ExportBundled`` saves."""
        return self.autoencoder

    def network_config(self) -> dict[str, Any]:
        """``config.json`` of the exported autoencoder: architecture + constructor arguments."""
        return {"architecture": "KLAutoencoder", **self.autoencoder_config()}

    def autoencoder_config(self) -> dict[str, Any]:
        """Constructor arguments of the autoencoder."""
        h = dict(self.hparams)
        return {
            "in_channels": h["in_channels"], "latent_channels": h["latent_channels"],
            "channels": list(h["channels"]), "num_res_blocks": h["num_res_blocks"],
            "downsampling_factor": self.autoencoder.downsampling_factor,
            "band_mean": None if h["band_mean"] is None else list(h["band_mean"]),
            "band_std": None if h["band_std"] is None else list(h["band_std"]),
            "scaling_factor": self.autoencoder.scaling_factor, "shortcut": h["shortcut"],
        }  # fmt: skip

    def _losses(self, hr: Tensor, sample: bool) -> dict[str, Tensor]:
        hr = hr.contiguous(memory_format=torch.channels_last)
        recon, posterior = self.autoencoder(hr, sample=sample)
        l1 = (recon - hr).abs().mean()
        perceptual = (
            self.lpips(lpips_input(recon, self.rgb), lpips_input(hr, self.rgb)).mean()
            if self.lpips_weight > 0
            else recon.new_zeros(())
        )
        kl = posterior.kl().mean() / hr[0].numel()
        loss = l1 + self.lpips_weight * perceptual + self.kl_weight * kl * hr[0].numel()
        return {"loss": loss, "l1": l1, "lpips": perceptual, "kl": kl, "psnr": psnr(recon, hr).mean()}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        losses = self._losses(batch[1], sample=True)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False)
        return losses["loss"]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        losses = self._losses(batch[1], sample=False)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.autoencoder.parameters(), lr=self.lr, weight_decay=0.0)
