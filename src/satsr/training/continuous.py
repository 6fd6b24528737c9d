"""Training ``ContinuousSR``: E2DiffSR's two stages (Wu et al., Sec. III-D) and the regression baseline.

* ``PriorAutoencoderModule`` (stage 1): DPEncoder + DPESR (decoder, SR branch, upsampler), loss
  ``L1 + kl_weight KL + adv_weight L_adv`` (Eq. 12), the hinge adversarial term from a small patch
  discriminator switched on after ``adv_start`` steps (the paper: L1 alone for the first 5 epochs),
  optionally ``+ perceptual_weight LPIPS`` as in the autoencoder of Rombach et al. that the paper follows
  (``satsr.training.adversarial``).
* ``LatentPriorModule`` (stage 2): CondNet + denoiser with the stage-1 parts frozen, loss
  ``L1(z0_hat, z0) + L1(CondNet(LR up), z0)`` (Eq. 13), ``z0_hat`` after all T reverse steps (Alg. 1).
  Ablations (Table VI): ``kd_loss=False``; ``unrolled=False`` trains DDPM-style at one random timestep.
* ``ContinuousRegressionModule``: SR branch + upsampler alone (Model-I-Retrained, Table IV), under L1 or,
  with the same weights, under stage 1's terms ("the same training setup", Sec. IV-E).
* ``PipelineFinetuneModule`` (not in the paper): an exported two-stage model fine-tuned end to end as it
  runs at inference (the prior sampled from the LR, LR consistency), under stage 1's image terms plus
  stage 2's (``latent_terms``).

Batches are ``(lr, hr)`` sharing one scale, ``hr.shape[-1] / lr.shape[-1]`` (``satsr.data.continuous``),
so ``round(lr_side * scale)`` is exactly the HR side. Each module exposes ``network`` and
``network_config()`` for ``satsr.training.callbacks.ExportBundled``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.diffusion.unrolled import q_sample
from satsr.evaluation.metrics import lr_grid_pattern
from satsr.models.continuous import ContinuousSR
from satsr.training.adversarial import PatchDiscriminator, ReconstructionTerms, artifact_map
from satsr.training.continuous_base import ContinuousModule, batch_scale, hr_grid, read_network

#: Parts trained in stage 1 and frozen in stage 2.
STAGE1_PARTS = ("encoder", "decoder", "sr_branch", "upsampler")
#: Seed of the validation samples of stage 2.
VAL_SEED = 0


class _ReconstructionModule(ContinuousModule):
    """Stage 1 and the regression baseline: ``l1_weight L1 + perceptual_weight LPIPS + adv_weight L_adv``
    (plus what ``reconstruct`` adds), manual optimisation: the generator and, once
    ``global_step >= adv_start``, the discriminator step on every batch."""

    def __init__(
        self,
        network: dict[str, Any],
        query_crop: int | None,
        init_dir: str | None,
        lr: float,
        perceptual_weight: float,
        adv_weight: float,
        adv_start: int,
        disc_lr: float,
        disc_channels: int,
        l1_weight: float = 1.0,  # PipelineFinetuneModule may trade L1 for a squared error
    ) -> None:
        super().__init__(network, query_crop, init_dir)
        self.automatic_optimization = False
        self.terms = ReconstructionTerms(
            self.network.in_channels, perceptual_weight, adv_weight, disc_channels
        )
        self.lr, self.adv_start, self.disc_lr, self.l1_weight = lr, adv_start, disc_lr, l1_weight

    @property
    def discriminator(self) -> PatchDiscriminator:
        return self.terms.discriminator

    def adversarial(self) -> bool:
        return self.terms.adv_weight > 0 and self.global_step >= self.adv_start

    def reconstruct(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Training output, its target and the loss terms beyond L1 (already weighted), by name."""
        raise NotImplementedError

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimisers: a list
        sr, hr, extra = self.reconstruct(*batch)
        l1 = F.l1_loss(sr.float(), hr)
        adversarial = self.adversarial()
        weighted, terms = self.terms.generator(sr, hr, adversarial)
        loss = self.l1_weight * l1 + weighted + sum(extra.values())
        opt_g.zero_grad()
        self.manual_backward(loss)
        opt_g.step()
        logs = {"train/l1": l1, **{f"train/{k}": v for k, v in terms.items()}}
        if adversarial:
            d_loss = self.terms.discriminator_loss(sr, hr)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            logs["train/d_loss"] = d_loss
        self.log_dict(logs, prog_bar=True, batch_size=hr.shape[0])

    def trained_parameters(self) -> list[nn.Parameter]:
        return list(self.network.parameters())

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        generator = torch.optim.AdamW(self.trained_parameters(), lr=self.lr, weight_decay=0.0)
        discriminator = torch.optim.Adam(self.discriminator.parameters(), lr=self.disc_lr, betas=(0.5, 0.9))
        return [generator, discriminator]


class ContinuousRegressionModule(_ReconstructionModule):
    """``ContinuousSR(prior=False)``: the LIIF-like baseline (Model-I-Retrained), under L1 alone by default
    or, given stage 1's loss weights, under stage 1's losses (the paper's "same training setup")."""

    def __init__(
        self,
        network: dict[str, Any] | None = None,  # ContinuousSR arguments (prior is forced to False)
        lr: float = 2e-4,  # AdamW learning rate
        query_crop: int | None = None,  # train on a random window of this many HR pixels (None: all)
        init_dir: str | None = None,  # start from this exported regression model (e.g. to train longer)
        perceptual_weight: float = 0.0,  # weight of LPIPS on the RGB output
        adv_weight: float = 0.0,  # weight of the hinge generator loss -D(SR) (0: no discriminator)
        adv_start: int = 0,  # optimiser steps without the adversarial terms
        disc_lr: float = 2e-4,  # Adam learning rate of the discriminator
        disc_channels: int = 32,  # width of the patch discriminator's first layer
    ) -> None:
        super().__init__(
            {**(network or {}), "prior": False}, query_crop, init_dir, lr, perceptual_weight, adv_weight,
            adv_start, disc_lr, disc_channels,
        )  # fmt: skip
        self.save_hyperparameters()

    def predict(self, lr: Tensor, hr: Tensor) -> Tensor:
        return self.network.render(lr, batch_scale(lr, hr), hr_grid(lr, hr))

    def reconstruct(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        coords, target = self.query_window(lr, hr)
        return self.network.render(lr, batch_scale(lr, hr), coords), target, {}


class PriorAutoencoderModule(_ReconstructionModule):
    """Stage 1 (Eq. 12): DPEncoder + DPESR reconstruct the HR from the LR and the encoded differential
    prior (a posterior sample in training, its mode in validation); the loss adds ``kl_weight * KL``."""

    def __init__(
        self,
        network: dict[str, Any] | None = None,  # ContinuousSR arguments (prior is forced to True)
        lr: float = 2e-4,  # AdamW learning rate of the encoder, decoder, SR branch and upsampler
        kl_weight: float = 1e-4,  # weight of the KL per latent element (nats)
        adv_weight: float = 5e-3,  # weight of the hinge generator loss -D(SR)
        adv_start: int = 2000,  # optimiser steps of L1 (+ KL) alone before the adversarial terms
        disc_lr: float = 2e-4,  # Adam learning rate of the discriminator
        disc_channels: int = 32,  # width of the patch discriminator's first layer
        query_crop: int | None = None,  # L1 and GAN on a random window of this many HR pixels (None: all)
        init_dir: str | None = None,  # start from this exported model's stage-1 parts (e.g. to train longer)
        perceptual_weight: float = 0.0,  # weight of LPIPS on the RGB output (Rombach et al.'s autoencoder)
    ) -> None:
        super().__init__(
            {**(network or {}), "prior": True}, query_crop, init_dir, lr, perceptual_weight, adv_weight,
            adv_start, disc_lr, disc_channels,
        )  # fmt: skip
        self.save_hyperparameters()
        self.kl_weight = kl_weight

    def predict(self, lr: Tensor, hr: Tensor) -> Tensor:
        z = self.network.encode(lr, hr).mode()
        return self.network.render(lr, batch_scale(lr, hr), hr_grid(lr, hr), z)

    def reconstruct(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        posterior = self.network.encode(lr, hr)
        z = posterior.sample()
        coords, target = self.query_window(lr, hr)
        sr = self.network.render(lr, batch_scale(lr, hr), coords, z)
        kl = posterior.kl().float().mean() / z[0].numel()
        self.log("train/kl", kl.detach(), batch_size=lr.shape[0])
        return sr, target, {"kl": self.kl_weight * kl}

    def trained_parameters(self) -> list[nn.Parameter]:
        return [p for name in STAGE1_PARTS for p in getattr(self.network, name).parameters()]


class PipelineFinetuneModule(_ReconstructionModule):
    """A step beyond the paper: the model as it runs at inference (``ContinuousSR.forward``: the prior
    sampled from the LR in T steps, rendering, LR consistency when the model has it) fine-tuned end to
    end under stage 1's image losses, so that the SR branch learns to use the prior the diffusion
    predicts rather than the encoder's, and its texture is judged after the back-projection that the
    user gets. The stage-2 terms (Eq. 13) stay in the loss (``latent_weight``) so that the prior keeps
    meaning the HR - LR detail; the encoder is frozen (it only gives their target). Rendering is on the
    whole HR grid: the LR correction needs it.

    With ``artifact_weight`` > 0, LDL's artifact term (``satsr.training.adversarial.artifact_map``)
    joins the loss: ``artifact_weight * L1(M sr, M hr)``, ``M`` judged against a reference output of
    the same LR and seeds, from a frozen model (``reference_dir``, e.g. an L1-trained one) or, as in
    Liang et al., an exponential moving average of the network itself (``reference_decay``).

    With ``grid_weight`` > 0 (not in the paper) the loss also takes the output's LR-grid pattern
    (``satsr.evaluation.metrics.lr_grid_pattern``: detail laid out in LR pixels, the blobs) beyond
    the truth's own, per image: ``grid_weight * relu(P(sr) - P(hr))``. It is a ratio to the mean
    gradient, so blurring does not lower it; only detail off the LR grid does.

    With ``mse_weight`` > 0 the squared error (PSNR's own distortion) joins L1 or, with
    ``l1_weight=0``, replaces it."""

    def __init__(
        self,
        init_dir: str | None = None,  # exported two-stage model to fine-tune; None: untrained (tests)
        network: dict[str, Any] | None = None,  # ContinuousSR arguments over those of ``init_dir``
        lr: float = 5e-5,  # AdamW learning rate of everything but the encoder
        latent_weight: float = 1.0,  # weight of the stage-2 terms (unrolled diffusion + KD)
        perceptual_weight: float = 0.5,  # weight of LPIPS on the RGB output
        adv_weight: float = 5e-3,  # weight of the hinge generator loss -D(SR)
        adv_start: int = 0,  # optimiser steps without the adversarial terms
        disc_lr: float = 2e-4,  # Adam learning rate of the discriminator
        disc_channels: int = 32,  # width of the patch discriminator's first layer
        artifact_weight: float = 0.0,  # weight of LDL's artifact term (0: none)
        grid_weight: float = 0.0,  # weight of the LR-grid pattern in excess of the truth's (0: none)
        reference_dir: str | None = None,  # the artifact term's frozen reference; None: the network's EMA
        reference_decay: float = 0.999,  # EMA decay of the reference when it is the network's own
        l1_weight: float = 1.0,  # weight of L1 on the RGB output
        mse_weight: float = 0.0,  # weight of the squared error on the RGB output (PSNR's own distortion)
    ) -> None:
        if l1_weight < 0 or mse_weight < 0 or l1_weight + mse_weight == 0:
            raise ValueError(f"need l1_weight, mse_weight >= 0, not both 0, got {l1_weight}, {mse_weight}")
        super().__init__(
            {**(network or {}), "prior": True}, None, init_dir, lr, perceptual_weight, adv_weight,
            adv_start, disc_lr, disc_channels, l1_weight,
        )  # fmt: skip
        self.save_hyperparameters()
        self.network.encoder.requires_grad_(False)  # type: ignore[union-attr]  # prior=True: it exists
        self.latent_weight = latent_weight
        if grid_weight < 0:
            raise ValueError(f"grid_weight must be >= 0, got {grid_weight}")
        self.grid_weight = grid_weight
        self.mse_weight = mse_weight
        if artifact_weight < 0 or not 0 <= reference_decay < 1:
            raise ValueError(f"need artifact_weight >= 0 and 0 <= reference_decay < 1, got "
                             f"{artifact_weight}, {reference_decay}")  # fmt: skip
        self.artifact_weight, self.reference_decay = artifact_weight, reference_decay
        self.ema_reference = artifact_weight > 0 and reference_dir is None
        self.reference: ContinuousSR | None = None
        if artifact_weight > 0:
            if reference_dir is None:
                self.reference = copy.deepcopy(self.network)
            else:
                config, weights = read_network(Path(reference_dir), prior=True)
                self.reference = ContinuousSR(**config)
                self.reference.load_state_dict(weights)
            self.reference.requires_grad_(False).eval()

    def predict(self, lr: Tensor, hr: Tensor) -> Tensor:
        return self.network(lr, batch_scale(lr, hr), [VAL_SEED + i for i in range(lr.shape[0])])

    def reconstruct(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        seeds = torch.randint(0, 2**31 - 1, (lr.shape[0],)).tolist()
        sr = self.network(lr, batch_scale(lr, hr), seeds)
        latent = latent_terms(self.network, lr, hr, kd_loss=True, unrolled=True)
        self.log_dict({f"train/{k}": v.detach() for k, v in latent.items()}, batch_size=lr.shape[0])
        extra = {"latent": self.latent_weight * latent["loss"]}
        if self.mse_weight > 0:
            mse = F.mse_loss(sr.float(), hr)
            self.log("train/mse", mse.detach(), batch_size=lr.shape[0])
            extra["mse"] = self.mse_weight * mse
        if self.reference is not None:
            with torch.no_grad():
                reference = self.reference(lr, batch_scale(lr, hr), seeds)
            weight = artifact_map(sr, hr, reference)
            artifact = F.l1_loss(weight * sr.float(), weight * hr)
            self.log("train/artifact", artifact.detach(), batch_size=lr.shape[0])
            extra["artifact"] = self.artifact_weight * artifact
        if self.grid_weight > 0 and hr.shape[-1] > lr.shape[-1]:
            lr_size = (lr.shape[-2], lr.shape[-1])
            excess = (lr_grid_pattern(sr.float(), lr_size) - lr_grid_pattern(hr, lr_size)).clamp_min(0)
            self.log("train/grid", excess.detach().mean(), batch_size=lr.shape[0])
            extra["grid"] = self.grid_weight * excess.mean()
        return sr, hr, extra

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema_reference and self.reference is not None:
            with torch.no_grad():
                for ema, p in zip(self.reference.parameters(), self.network.parameters(), strict=True):
                    ema.lerp_(p.detach(), 1 - self.reference_decay)

    def train(self, mode: bool = True) -> PipelineFinetuneModule:
        super().train(mode)
        if self.reference is not None:
            self.reference.eval()  # a fixed (or averaged) model, whatever the trainer sets
        return self

    def trained_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.network.parameters() if p.requires_grad]


@torch.no_grad()
def encoded_prior(network: ContinuousSR, lr: Tensor, hr: Tensor) -> Tensor:
    """``z0``: the frozen encoder's posterior mode, in diffusion units (stage 2's target)."""
    return network.encode(lr, hr).mode() * network.latent_scaling


def latent_terms(
    network: ContinuousSR, lr: Tensor, hr: Tensor, kd_loss: bool, unrolled: bool
) -> dict[str, Tensor]:
    """Stage 2's loss (Eq. 13) of ``network`` on a batch: the prior after all T reverse steps (or, not
    ``unrolled``, the noise at one random step) against the frozen encoder's ``z0`` (posterior mode, in
    diffusion units), plus the KD term ``L1(CondNet(LR up), z0)`` when ``kd_loss``."""
    scale, z0 = batch_scale(lr, hr), encoded_prior(network, lr, hr)
    cond = network.condition(lr, scale)
    noise = torch.randn_like(z0)
    betas = network.betas
    if unrolled:
        z_T = q_sample(z0, len(betas), noise, betas)
        diffusion = F.l1_loss(network.reverse(cond, z_T, scale), z0)
    else:
        t = int(torch.randint(1, len(betas) + 1, ()))
        eps = network.predict_noise(cond, q_sample(z0, t, noise, betas), t, scale)
        diffusion = F.l1_loss(eps, noise)
    kd = F.l1_loss(cond, z0)
    loss = diffusion + kd if kd_loss else diffusion
    return {"loss": loss, "diffusion": diffusion, "kd": kd}


class LatentPriorModule(ContinuousModule):
    """Stage 2 (Eq. 13, Alg. 1): CondNet and the denoiser learn to produce the encoder's prior ``z0``
    (its posterior mode, times ``latent_scaling``) from the LR; the stage-1 parts are frozen."""

    def __init__(
        self,
        stage1_dir: str | None = None,  # exported stage-1 model folder; None: an untrained stage 1 (tests)
        network: dict[str, Any] | None = None,  # ContinuousSR arguments over those of stage 1
        lr: float = 2e-4,  # AdamW learning rate of CondNet and the denoiser
        kd_loss: bool = True,  # the KD term L1(CondNet(LR up), z0) (Table VI: "w/o KD loss" when False)
        unrolled: bool = True,  # all T steps per example; False: one random timestep, eps loss (DDPM)
        latent_scaling: float | None = None,  # None: 1 / std of z0, measured when fitting starts
        scaling_batches: int = 16,  # training batches that measure it
    ) -> None:
        config: dict[str, Any] = {}
        weights: dict[str, Tensor] = {}
        if stage1_dir is not None:
            config, weights = read_network(Path(stage1_dir), prior=True)
        if latent_scaling is not None:
            config["latent_scaling"] = latent_scaling
        super().__init__({**config, **(network or {}), "prior": True})
        self.save_hyperparameters()
        frozen = {k: v for k, v in weights.items() if k.split(".")[0] in STAGE1_PARTS}
        if weights:
            missing = [
                k for k in self.network.state_dict() if k.split(".")[0] in STAGE1_PARTS and k not in frozen
            ]
            if missing:
                raise ValueError(f"the stage-1 weights lack {missing[:3]}...")
            self.network.load_state_dict(frozen, strict=False)
        for name in STAGE1_PARTS:
            getattr(self.network, name).requires_grad_(False)
        self.lr, self.kd_loss, self.unrolled = lr, kd_loss, unrolled
        self.measure_scaling = latent_scaling is None and "latent_scaling" not in (network or {})
        self.scaling_batches = scaling_batches

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.fresh_datamodule()
        if stage == "fit" and self.measure_scaling and datamodule is not None:
            scaling = 1.0 / self.latent_std(datamodule.train_dataloader())
            self.set_latent_scaling(self.trainer.strategy.broadcast(scaling, src=0))  # DDP: rank 0's

    @torch.no_grad()
    def latent_std(self, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
        """Std of the stage-1 prior ``z0`` (posterior mode, unscaled) over ``scaling_batches`` batches."""
        latents = [
            self.network.encode(lr, hr).mode().flatten()
            for (lr, hr), _ in zip(batches, range(self.scaling_batches), strict=False)
        ]
        return float(torch.cat(latents).std())

    def set_latent_scaling(self, scaling: float) -> None:
        if not scaling > 0:
            raise ValueError(f"latent_scaling must be positive, got {scaling}")
        self.network.latent_scaling = self.network_kwargs["latent_scaling"] = float(scaling)
        self.measure_scaling = False

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "latent_scaling" in checkpoint.get("network_config", {}):  # the scaling the run started with
            self.set_latent_scaling(checkpoint["network_config"]["latent_scaling"])

    def target(self, lr: Tensor, hr: Tensor) -> Tensor:
        return encoded_prior(self.network, lr, hr)

    def predict(self, lr: Tensor, hr: Tensor) -> Tensor:
        scale = batch_scale(lr, hr)
        z = self.network.sample_prior(lr, scale, [VAL_SEED + i for i in range(lr.shape[0])])
        return self.network.render(lr, scale, hr_grid(lr, hr), z)

    def losses(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        return latent_terms(self.network, lr, hr, self.kd_loss, self.unrolled)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        losses = self.losses(*batch)
        self.log_dict(
            {f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch[0].shape[0]
        )
        return losses["loss"]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        lr, hr = batch
        with torch.no_grad():
            seeds = [VAL_SEED + i for i in range(lr.shape[0])]
            sampled = self.network.sample_prior(lr, batch_scale(lr, hr), seeds) * self.network.latent_scaling
            latent_l1 = F.l1_loss(sampled, self.target(lr, hr))
        self.log("val/latent_l1", latent_l1, prog_bar=True, batch_size=lr.shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.network.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
