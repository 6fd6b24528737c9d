"""Train E2DiffSR (``ContinuousSR``) on the aerial RGB pictures with a wall-clock budget (resumable).

Usage: python scripts/train_continuous.py stage1 runs/e2diffsr-s1 --minutes 60
       python scripts/train_continuous.py stage2 runs/e2diffsr-s2 --minutes 30 --stage1 runs/e2diffsr-s1/model
       python scripts/train_continuous.py regression runs/continuous-regression --minutes 60
       python scripts/train_continuous.py finetune runs/e2diffsr-ft --minutes 60 --init runs/e2diffsr-s2/model
         (the two-stage model as it runs at inference, end to end under stage 1's image losses)
Ablations of stage 2 (Wu et al., Table VI): --no-kd, --random-timesteps. Running the same command
again resumes from OUT/checkpoints/last.ckpt. The model folder OUT/model (config.json +
model.safetensors + train_log.json) is rewritten after every validation; ``MODEL_CARD.md`` is left
to a person.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

from satsr.data.continuous import ContinuousDataModule
from satsr.training.callbacks import ExportBundled
from satsr.training.continuous import (
    ContinuousRegressionModule,
    LatentPriorModule,
    PipelineFinetuneModule,
    PriorAutoencoderModule,
)

#: What the regression baseline is, before the losses it was trained under.
REGRESSION = "Continuous-scale RGB SR (x1-x8), SR branch + implicit upsampler"
SUMMARIES = {
    "stage1": "E2DiffSR stage 1: differential-prior autoencoder + continuous-scale SR branch (RGB, x1-x8)",
    "stage2": "E2DiffSR: continuous-scale RGB SR (x1-x8) guided by a 4-step latent-diffusion prior",
    "regression": f"{REGRESSION} under L1 (LIIF-like)",
    "finetune": "E2DiffSR: continuous-scale RGB SR (x1-x8), 4-step latent prior, fine-tuned end to end",
}


def summary(args: argparse.Namespace) -> str:
    """The exported model's one-line card, naming the losses of a regression that is not plain L1."""
    if args.stage != "regression" or not (args.perceptual_weight or args.regression_gan):
        return SUMMARIES[args.stage]
    terms = ["L1"] + [f"{args.perceptual_weight:g} LPIPS"] * bool(args.perceptual_weight)
    terms += [f"{args.adv_weight:g} GAN"] * args.regression_gan
    return f"{REGRESSION} under {' + '.join(terms)} (Model-I-Retrained)"


def build(args: argparse.Namespace) -> L.LightningModule:
    network: dict[str, Any] = {"channels": args.channels, "blocks_per_unit": args.blocks_per_unit}
    crop, init = args.query_crop or None, (str(args.init) if args.init else None)
    if args.stage == "regression":
        return ContinuousRegressionModule(
            network, lr=args.lr, query_crop=crop, init_dir=init, perceptual_weight=args.perceptual_weight,
            adv_weight=args.adv_weight if args.regression_gan else 0.0, adv_start=args.adv_start,
        )  # fmt: skip
    if args.stage == "stage1":
        return PriorAutoencoderModule(
            network, lr=args.lr, kl_weight=args.kl_weight, adv_weight=args.adv_weight,
            adv_start=args.adv_start, query_crop=crop, init_dir=init,
            perceptual_weight=args.perceptual_weight,
        )  # fmt: skip
    if args.stage == "finetune":
        if init is None:
            raise SystemExit("finetune needs --init (the exported two-stage model folder)")
        grown: dict[str, Any] = {"prior_detail": True} if args.prior_detail else {}
        if args.deeper:
            grown["blocks_per_unit"] = args.deeper
        return PipelineFinetuneModule(
            init, network=grown or None, lr=args.lr, latent_weight=args.latent_weight,
            perceptual_weight=args.perceptual_weight,
            adv_weight=args.adv_weight, adv_start=args.adv_start, artifact_weight=args.artifact_weight,
            grid_weight=args.grid_weight, l1_weight=args.l1_weight, mse_weight=args.mse_weight,
            reference_dir=str(args.reference) if args.reference else None,
        )  # fmt: skip
    if args.stage1 is None:
        raise SystemExit("stage2 needs --stage1 (the exported stage-1 model folder)")
    return LatentPriorModule(
        str(args.stage1), lr=args.lr, kd_loss=not args.no_kd, unrolled=not args.random_timesteps,
        latent_scaling=args.latent_scaling or None,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["stage1", "stage2", "regression", "finetune"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--stage1", type=Path, default=None, help="stage-1 model folder (stage2 only)")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="stage1/regression/finetune: start from this exported model folder",
    )
    parser.add_argument("--lr-patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-scale", type=float, default=8.0)
    parser.add_argument("--channels", type=int, default=48, help="SR-branch width (stage1, regression)")
    parser.add_argument("--blocks-per-unit", type=int, default=4, help="IMDBs per refinement unit")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--kl-weight", type=float, default=1e-4)
    parser.add_argument("--adv-weight", type=float, default=5e-3)
    parser.add_argument("--adv-start", type=int, default=2000, help="L1-only optimiser steps before the GAN")
    parser.add_argument(
        "--perceptual-weight", type=float, default=0.0, help="LPIPS weight (stage1, regression)"
    )
    parser.add_argument(
        "--regression-gan", action="store_true", help="regression: add stage 1's adversarial term"
    )
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed")
    parser.add_argument("--query-crop", type=int, default=192, help="HR window of the loss (0: whole patch)")
    parser.add_argument("--latent-scaling", type=float, default=0.0, help="stage2; 0: 1 / measured z0 std")
    parser.add_argument("--latent-weight", type=float, default=1.0, help="finetune: stage-2 terms' weight")
    parser.add_argument(
        "--grid-weight", type=float, default=0.0, help="finetune: LR-grid pattern beyond the truth's"
    )
    parser.add_argument("--l1-weight", type=float, default=1.0, help="finetune: L1 weight")
    parser.add_argument("--mse-weight", type=float, default=0.0, help="finetune: squared-error weight")
    parser.add_argument(
        "--artifact-weight", type=float, default=0.0, help="finetune: LDL artifact term (Liang et al.)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="finetune: the artifact term's frozen reference model (default: an EMA of the network)",
    )
    parser.add_argument(
        "--deeper",
        type=int,
        default=0,
        help="finetune: this many IMDBs per refinement unit, the extra ones starting as the identity",
    )
    parser.add_argument(
        "--prior-detail",
        action="store_true",
        help="finetune: feed the prior's output-size level to the upsampler's MLP (starts at zero)",
    )
    parser.add_argument("--no-kd", action="store_true", help="stage2 ablation: drop the KD loss")
    parser.add_argument(
        "--random-timesteps", action="store_true", help="stage2 ablation: DDPM-style training"
    )
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay of the exported weights (0: none)")
    parser.add_argument("--val-every", type=int, default=250, help="training batches between validations")
    parser.add_argument("--val-rounds", type=int, default=2, help="validation batches per validation scale")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = ContinuousDataModule(
        args.lr_patch, args.batch, max_scale=args.max_scale, train_batches=max(args.val_every, 1000),
        val_rounds=args.val_rounds, num_workers=args.workers,
    )  # fmt: skip
    last = args.out / "checkpoints" / "last.ckpt"
    module = build(args)
    callbacks: list[L.Callback] = [
        ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, every_n_train_steps=200),
        ExportBundled(args.out / "model", summary=summary(args), every_validation=True),
    ]
    if args.ema:
        callbacks.append(EMAWeightAveraging(decay=args.ema, update_starting_at_step=100))
    trainer = L.Trainer(
        max_time=datetime.timedelta(minutes=args.minutes), max_epochs=-1, precision=args.precision,
        callbacks=callbacks, logger=L.pytorch.loggers.CSVLogger(args.out, name="logs"),
        val_check_interval=args.val_every, check_val_every_n_epoch=None, enable_progress_bar=False,
        log_every_n_steps=25, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data, ckpt_path=last if last.exists() else None)


if __name__ == "__main__":
    main()
