"""Regression (L1) training of the fixed-scale residual CNN, as a LightningModule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from satsr.evaluation.metrics import psnr
from satsr.models.fast import ResidualSR

Schedule = Literal["constant", "cosine"]


class SRRegression(L.LightningModule):
    """L1 regression of HR patches from LR patches with a ``ResidualSR`` network.

    The network's constructor arguments are this module's first arguments, so the LightningCLI config,
    the checkpoint's hyper-parameters and the exported ``config.json`` all hold the same values.
    ``band_mean``/``band_std`` left as ``None`` are computed from the training pixels of the datamodule
    (``SRDataModule.band_statistics``) when fitting starts, and stored in every checkpoint.
    """

    def __init__(
        self,
        in_channels: int = 4,  # bands of the input and output
        scale: int = 4,  # integer upscaling factor
        channels: int = 32,  # feature width of the body
        num_blocks: int = 6,  # residual blocks in the body
        res_scale: float = 1.0,  # residual branch multiplier
        band_mean: Sequence[float] | None = None,  # per-band normalisation mean; None: from the train data
        band_std: Sequence[float] | None = None,  # per-band normalisation std; None: from the train data
        progressive_upsampling: bool = False,  # EDSR x2 upsampling stages instead of one pixel shuffle
        lr: float = 5e-4,  # AdamW learning rate
        weight_decay: float = 0.0,  # AdamW decoupled weight decay
        schedule: Schedule = "constant",  # learning-rate schedule over trainer.estimated_stepping_batches
        data_range: float = 1.0,  # peak value for PSNR (reflectance 1.0, pictures in [0, 1])
        init_dir: str | None = None,  # start from this exported ResidualSR (its weights and band statistics)
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network_kwargs: dict[str, Any] = {
            "in_channels": in_channels,
            "scale": scale,
            "channels": channels,
            "num_blocks": num_blocks,
            "res_scale": res_scale,
            "band_mean": list(band_mean) if band_mean is not None else None,
            "band_std": list(band_std) if band_std is not None else None,
            "progressive_upsampling": progressive_upsampling,
        }
        if init_dir is not None:
            config = json.loads((Path(init_dir) / "config.json").read_text())
            shape = {k: config.get(k) for k in ("in_channels", "scale", "channels", "num_blocks")}
            if shape != {k: self.network_kwargs[k] for k in shape}:
                raise ValueError(f"{init_dir}: a ResidualSR of {shape}, not of the model arguments")
            self.network_kwargs["band_mean"], self.network_kwargs["band_std"] = (
                config["band_mean"],
                config["band_std"],
            )
            self.hparams.update(band_mean=config["band_mean"], band_std=config["band_std"])
        self.network = self._build_network()
        if init_dir is not None:
            self.network.load_state_dict(load_file(Path(init_dir) / "model.safetensors"))

    def _build_network(self) -> ResidualSR:
        network = ResidualSR(**self.network_kwargs)
        return network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def network_config(self) -> dict[str, Any]:
        """Constructor arguments of ``network``: the bundled ``config.json`` minus its descriptive keys."""
        return {"architecture": type(self.network).__name__, **self.network_kwargs}

    def set_band_statistics(self, band_mean: Sequence[float], band_std: Sequence[float]) -> None:
        """Fix the normalisation statistics (non-persistent buffers of the network)."""
        self.network_kwargs["band_mean"], self.network_kwargs["band_std"] = list(band_mean), list(band_std)
        fresh = ResidualSR(**self.network_kwargs)
        self.network.band_mean.copy_(fresh.band_mean)
        self.network.band_std.copy_(fresh.band_std)
        self.hparams.update(band_mean=list(band_mean), band_std=list(band_std))

    def has_band_statistics(self) -> bool:
        return self.network_kwargs["band_mean"] is not None and self.network_kwargs["band_std"] is not None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        bands = getattr(datamodule, "bands", None)
        data_scale = getattr(datamodule, "scale", None)
        if data_scale is not None and data_scale != self.hparams["scale"]:
            raise ValueError(
                f"the model has scale={self.hparams['scale']} but the data has scale={data_scale}; "
                "set the same scale for both"
            )
        if bands is not None and len(bands) != self.hparams["in_channels"]:
            raise ValueError(
                f"the model has in_channels={self.hparams['in_channels']} but the data has "
                f"{len(bands)} bands ({', '.join(bands)}); set --model.in_channels {len(bands)}"
            )
        restoring = self._trainer is not None and self.trainer.ckpt_path is not None
        if not self.has_band_statistics() and not restoring:  # a checkpoint brings its own statistics
            if datamodule is None or not hasattr(datamodule, "band_statistics"):
                raise ValueError("band_mean/band_std are not set and the datamodule cannot compute them")
            self.set_band_statistics(*datamodule.band_statistics())

    def forward(self, lr: Tensor) -> Tensor:
        return self.network(lr.contiguous(memory_format=torch.channels_last))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        lr, hr = batch
        loss = F.l1_loss(self(lr), hr)
        self.log("train/l1", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], prefix: str) -> None:
        lr, hr = batch
        sr = self(lr).contiguous()
        bicubic = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False)
        metrics = {
            f"{prefix}/l1": F.l1_loss(sr, hr),
            f"{prefix}/psnr": psnr(sr, hr, self.hparams["data_range"]).mean().float(),
            f"{prefix}/psnr_bicubic": psnr(bicubic, hr, self.hparams["data_range"]).mean().float(),
        }
        self.log_dict(metrics, prog_bar=prefix == "val", batch_size=lr.shape[0])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        if self.hparams["schedule"] == "constant":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["network_config"] = self.network_config()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("network_config", {})
        if saved.get("band_mean") is not None and saved.get("band_std") is not None:
            self.set_band_statistics(saved["band_mean"], saved["band_std"])
        elif not self.has_band_statistics():
            raise ValueError("the checkpoint holds no band_mean/band_std; pass them as model arguments")
