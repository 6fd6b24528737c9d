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


def _prefixed(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


class LatentDiffusionModule(L.LightningModule):
    """Fits the denoiser of a ``LatentDiffusionSR`` with the EDM loss on (lr, hr) pairs.

    The autoencoder (``autoencoder_dir``) and the reference regressor (``reference_dir``, optional)
    were trained before and stay frozen; only the UNet learns. ``first_stage`` instead of
    ``autoencoder_dir`` names a parameter-free first stage, e.g. ``{"architecture": "SpaceToDepth"}``
    (lossless); its band statistics default to the reference's. Validation draws one sample with the
    default sampler and reports its PSNR, so the curve shows what users get.

    Fine-tuning: ``init_dir`` (a saved ``LatentDiffusionSR``, e.g. the bundled s2-rgbn-x4-ldm) supplies
    the autoencoder, the reference and the starting UNet weights instead of ``autoencoder_dir`` and
    ``reference_dir``; UNet parts it lacks (a ``dt_embed`` when ``unet`` asks for ``time_conditioning``)
    keep their initialisation, which for ``dt_embed`` is zero, so training starts from the saved model.

    Batches are ``(lr, hr)``, or ``(lr, hr, dt_days, clear)`` from simulated revisits: then the UNet
    gets ``dt_days`` when it is time-conditioned, and the loss counts only latent pixels whose LR pixel
    is clear (the latent grid is the LR grid), so the model is not taught to invent ground under clouds.
    """

    def __init__(
        self,
        autoencoder_dir: str | None,  # folder of the trained KLAutoencoder (config.json + model.safetensors)
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
        init_dir: str | None = None,  # saved LatentDiffusionSR to fine-tune (see above)
        first_stage: dict[str, Any] | None = None,  # parameter-free first stage instead of autoencoder_dir
        default_detail: float = 1.0,  # LatentDiffusionSR.detail of the exported model
        sampler: str = "dpmpp_2m",  # LatentDiffusionSR.sampler of the exported model
        detail_threshold: float = 0.0,  # LatentDiffusionSR.detail_threshold of the exported model
        precision: str = "float32",  # LatentDiffusionSR.precision (sampling) of the exported model
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        init: dict[str, Tensor] = {}
        if init_dir is not None:
            if autoencoder_dir is not None or reference_dir is not None or first_stage is not None:
                raise ValueError("init_dir supplies the autoencoder and reference: leave their folders unset")
            saved, init = load_part(init_dir)
            ae_config, ref_config = saved["autoencoder"], saved["reference"]
            ae_state = _prefixed(init, "autoencoder.")
            ref_state = _prefixed(init, "reference.")
        elif (autoencoder_dir is None) == (first_stage is None):
            raise ValueError(
                "give autoencoder_dir (a trained KLAutoencoder), first_stage (a parameter-free one) "
                "or init_dir (a saved model)"
            )
        else:
            ref_config, ref_state = load_part(reference_dir) if reference_dir else (None, {})
            if autoencoder_dir is not None:
                ae_config, ae_state = load_part(autoencoder_dir)
            else:
                assert first_stage is not None
                statistics = {k: (ref_config or {}).get(k) for k in ("band_mean", "band_std")}
                ae_config, ae_state = {"in_channels": len(bands), **statistics, **first_stage}, {}
        self.config: dict[str, Any] = {
            "autoencoder": ae_config, "unet": dict(unet), "reference": ref_config, "bands": list(bands),
            "scale": ae_config.get("downsampling_factor", 4), "sigma_data": sigma_data,
            "sigma_min": sigma_min, "sigma_max": sigma_max, "default_steps": default_steps,
            "detail": default_detail, "sampler": sampler, "detail_threshold": detail_threshold,
            "precision": precision,
        }  # fmt: skip
        self.model = LatentDiffusionSR(**self.config)
        self.model.autoencoder.load_state_dict(ae_state)
        if self.model.reference is not None:
            self.model.reference.load_state_dict(ref_state)
        if init:
            self._start_unet_from(init, str(init_dir))
        for part in (self.model.autoencoder, self.model.reference):
            if part is not None:
                part.requires_grad_(False).eval()
        self.P_mean, self.P_std, self.lr = P_mean, P_std, lr

    def _start_unet_from(self, init: dict[str, Tensor], init_dir: str) -> None:
        """The UNet weights of a saved model; only a ``dt_embed`` it lacks may keep its initialisation."""
        try:
            missing, unexpected = self.model.precond.load_state_dict(
                _prefixed(init, "precond."), strict=False
            )
        except RuntimeError as error:  # shapes differ
            raise ValueError(f"{init_dir}: UNet weights do not fit the unet arguments: {error}") from None
        if unexpected or any(not k.startswith("net.dt_embed.") for k in missing):
            raise ValueError(
                f"{init_dir}: UNet weights do not fit: missing {missing}, unexpected {unexpected}"
            )

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

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        lr, hr = batch[:2]
        with torch.no_grad():
            cond, z_ref = self.model.condition(lr)
            target = self.model.target(hr, z_ref)
        kwargs: dict[str, Any] = {}
        if len(batch) == 4:
            dt_days, clear = batch[2:]
            kwargs["mask"] = clear[:, None]
            if self.model.time_conditioned:
                kwargs["dt_days"] = dt_days
        loss = edm_loss(self.model.precond, target, cond, P_mean=self.P_mean, P_std=self.P_std, **kwargs)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Single-revisit sampling (``fuse`` with N = 1) for revisit batches; else ``sample``."""
        lr, hr = batch[:2]
        if len(batch) == 4:
            sr = torch.cat([self.model.fuse(x[None], [float(dt)], seed=i, steps=self.model.default_steps)
                            for i, (x, dt) in enumerate(zip(lr, batch[2], strict=True))])  # fmt: skip
        else:
            sr = self.model.sample(lr, seeds=list(range(len(lr))))
        self.log("val/psnr", psnr(sr, hr).mean(), prog_bar=True)
        self.log("val/l1", (sr - hr).abs().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.precond.parameters(), lr=self.lr, weight_decay=0.0)
