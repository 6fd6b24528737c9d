"""Training the second stage of latent diffusion SR: the denoiser, with a frozen autoencoder and reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file
from torch import Tensor

from satsr.diffusion.losses import EDM_P_MEAN, EDM_P_STD, edm_loss
from satsr.evaluation.metrics import psnr
from satsr.models.ldm import LatentDiffusionSR


def load_part(folder: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """A trained part (``config.json`` constructor arguments + ``model.safetensors``) as (config, state)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("architecture", "bands", "summary")}
    return config, load_file(folder / "model.safetensors")


class LatentDiffusionModule(L.LightningModule):
    """Fits the denoiser of a ``LatentDiffusionSR`` with the EDM loss on (lr, hr) pairs.

    The autoencoder (``autoencoder_dir``) and the reference regressor (``reference_dir``, optional)
    were trained before and stay frozen; only the UNet learns. Validation draws one sample with the
    default sampler and reports its PSNR, so the curve shows what users get.
    """

    def __init__(
        self,
        autoencoder_dir: str,  # folder of the trained KLAutoencoder (config.json + model.safetensors)
        unet: dict[str, Any],  # ConditionalUNet arguments
        reference_dir: str | None = None,  # folder of the trained ResidualSR the diffusion refines
        bands: tuple[str, ...] = ("B02", "B03", "B04", "B08"),
        sigma_data: float = 0.5,  # std of latent residuals; measure it on data (scripts/train_stage.py)
        sigma_min: float = 0.002,  # sampling noise range
        sigma_max: float = 10.0,
        default_steps: int = 20,
        P_mean: float = EDM_P_MEAN,  # training noise law ln(sigma) ~ N(P_mean, P_std^2)
        P_std: float = EDM_P_STD,
        lr: float = 2e-4,  # AdamW learning rate
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        ae_config, ae_state = load_part(autoencoder_dir)
        ref_config, ref_state = load_part(reference_dir) if reference_dir else (None, {})
        self.config: dict[str, Any] = {
            "autoencoder": ae_config, "unet": dict(unet), "reference": ref_config, "bands": list(bands),
            "scale": ae_config.get("downsampling_factor", 4), "sigma_data": sigma_data,
            "sigma_min": sigma_min, "sigma_max": sigma_max, "default_steps": default_steps,
        }  # fmt: skip
        self.model = LatentDiffusionSR(**self.config)
        self.model.autoencoder.load_state_dict(ae_state)
        if self.model.reference is not None:
            self.model.reference.load_state_dict(ref_state)
        for part in (self.model.autoencoder, self.model.reference):
            if part is not None:
                part.requires_grad_(False).eval()
        self.P_mean, self.P_std, self.lr = P_mean, P_std, lr

    @property
    def network(self) -> LatentDiffusionSR:
        """What ``ExportBundled`` saves: the whole sampler-ready model, frozen parts included."""
        return self.model

    def network_config(self) -> dict[str, Any]:
        """``config.json`` of the exported model: architecture + constructor arguments."""
        return {"architecture": "LatentDiffusionSR", **self.config}

    def train(self, mode: bool = True) -> LatentDiffusionModule:
        """Keep the frozen parts in eval mode whatever Lightning asks."""
        super().train(mode)
        self.model.autoencoder.eval()
        if self.model.reference is not None:
            self.model.reference.eval()
        return self

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        lr, hr = batch
        with torch.no_grad():
            cond, z_ref = self.model.condition(lr)
            target = self.model.target(hr, z_ref)
        loss = edm_loss(self.model.precond, target, cond, P_mean=self.P_mean, P_std=self.P_std)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        lr, hr = batch
        sr = self.model.sample(lr, seeds=list(range(len(lr))))
        self.log("val/psnr", psnr(sr, hr).mean(), prog_bar=True)
        self.log("val/l1", (sr - hr).abs().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.precond.parameters(), lr=self.lr, weight_decay=0.0)
