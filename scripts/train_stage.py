"""Train a latent-diffusion stage on real S2 Wald pairs with a wall-clock budget (resumable).

Usage: python scripts/train_stage.py ae OUT_DIR --minutes 25
       python scripts/train_stage.py ldm OUT_DIR --minutes 45 --autoencoder DIR --reference DIR
       python scripts/train_stage.py ldm OUT_DIR --minutes 45 --first-stage space-to-depth --reference DIR
       python scripts/train_stage.py fusion OUT_DIR --minutes 40 [--init DIR] [--no-dt]
``fusion`` fine-tunes a saved latent diffusion model (default: the bundled s2-rgbn-x4-ldm) on simulated
revisits with a time-difference embedding (``--no-dt``: without it, the ablation).
The same modules run under ``satsr train`` with configs/; this script pins the recipes used for
the bundled weights and adds a time budget.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

from satsr.data.datamodules import SRDataModule
from satsr.diffusion.losses import EDM_P_MEAN
from satsr.training.autoencoder import AutoencoderModule
from satsr.training.callbacks import ExportBundled
from satsr.training.ldm import LatentDiffusionModule


@torch.no_grad()
def measure_sigma_data(module: LatentDiffusionModule, data: SRDataModule, batches: int = 32) -> float:
    """Std of the diffusion target (HR latent - reference latent) over training batches."""
    data.setup("fit")
    targets = []
    for i, (lr, hr) in enumerate(data.train_dataloader()):
        if i == batches:
            break
        _, z_ref = module.model.condition(lr)
        targets.append(module.model.target(hr, z_ref))
    return float(torch.cat(targets).std())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["ae", "ldm", "fusion"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--autoencoder", default=None)
    parser.add_argument("--reference", default="src/satsr/weights/s2-rgbn-x4-fast")
    parser.add_argument("--lr-patch", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--unet-channels", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--unet-blocks", type=int, default=2, help="ResnetBlocks per UNet level")
    parser.add_argument(
        "--first-stage",
        choices=["kl", "space-to-depth"],
        default="kl",
        help="kl: the trained --autoencoder; space-to-depth: lossless, nothing to train",
    )
    parser.add_argument("--steps", type=int, default=10, help="ldm: default sampler steps of the export")
    parser.add_argument("--sampler", default="dpmpp_2m", help="ldm: sampler of the export")
    parser.add_argument("--detail", type=float, default=1.0, help="ldm: default detail of the export")
    parser.add_argument("--sigma-max", type=float, default=40.0, help="ldm: sigma_max / sigma_data")
    parser.add_argument("--batches-per-epoch", type=int, default=2000 // 8, help="training batches per epoch")
    parser.add_argument("--sigma-data", type=float, default=0.0, help="0: measure on 32 training batches")
    parser.add_argument(
        "--init", default="src/satsr/weights/s2-rgbn-x4-ldm", help="fusion: model to fine-tune"
    )
    parser.add_argument("--no-dt", action="store_true", help="fusion: no time-difference conditioning")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workers", type=int, default=1, help="data loader processes")
    parser.add_argument(
        "--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed (measure it on your CPU)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = "revisits" if args.stage == "fusion" else "s2"
    data = SRDataModule(
        source, 4, args.lr_patch, args.batch, train_length=args.batches_per_epoch * args.batch, val_length=64,
        num_workers=args.workers,
    )  # fmt: skip
    if args.stage == "fusion":
        saved = json.loads((Path(args.init) / "config.json").read_text())
        unet = {**saved["unet"], "time_conditioning": not args.no_dt}
        module: L.LightningModule = LatentDiffusionModule(
            None, unet, None, sigma_data=saved["sigma_data"], sigma_min=saved["sigma_min"],
            sigma_max=saved["sigma_max"], default_steps=saved["default_steps"],
            P_mean=EDM_P_MEAN + math.log(saved["sigma_data"] / 0.5), lr=args.lr, init_dir=args.init,
        )  # fmt: skip
        summary = (
            "4x multi-revisit fusion for S2 B02,B03,B04,B08 (SatDiffMoE: dt-conditioned latent diffusion, "
            "DDIM with trajectory fusion)"
            if not args.no_dt
            else "ablation: revisit fine-tuned latent diffusion without dt conditioning"
        )
    elif args.stage == "ae":
        mean, std = data.band_statistics()
        module = AutoencoderModule(channels=(32, 64, 64), band_mean=mean, band_std=std)
        summary = "KL autoencoder, 4 bands -> 4 latent channels at 1/4 size (first stage of s2-rgbn-x4-ldm)"
    else:
        lossless = args.first_stage == "space-to-depth"
        latent = 4 * 16 if lossless else 4  # SpaceToDepth: every HR pixel of the 4 bands
        unet = {"latent_channels": latent, "cond_channels": 4 + latent, "channels": args.unet_channels,
                "num_res_blocks": args.unet_blocks}  # fmt: skip
        first = {"first_stage": {"architecture": "SpaceToDepth"}} if lossless else {}
        sigma_data = args.sigma_data or measure_sigma_data(
            LatentDiffusionModule(args.autoencoder, unet, args.reference, **first), data
        )
        # EDM's defaults are for sigma_data = 0.5; the noise ranges scale with the data.
        ratio = sigma_data / 0.5
        print(f"sigma_data = {sigma_data:.4f}")
        module = LatentDiffusionModule(
            args.autoencoder, unet, args.reference, sigma_data=sigma_data, sigma_min=0.002 * ratio,
            sigma_max=args.sigma_max * sigma_data, P_mean=EDM_P_MEAN + math.log(ratio), lr=args.lr,
            default_steps=args.steps, default_detail=args.detail, sampler=args.sampler, **first,
        )  # fmt: skip
        summary = "4x latent diffusion SR for S2 B02,B03,B04,B08 (EDM, DPM-Solver++ 2M, LR-consistent)"
    ckpt = ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, every_n_train_steps=200)
    callbacks: list[L.Callback] = [
        ckpt,
        ExportBundled(args.out / "model", summary=summary, every_validation=True),
    ]
    if args.stage != "ae":  # diffusion samples are much better from EMA weights (Karras et al. 2022)
        callbacks.append(EMAWeightAveraging(decay=0.999, update_starting_at_step=100))
    trainer = L.Trainer(
        max_time=datetime.timedelta(minutes=args.minutes), max_epochs=-1, precision=args.precision,
        callbacks=callbacks,
        logger=L.pytorch.loggers.CSVLogger(args.out, name="logs"), val_check_interval=250,
        check_val_every_n_epoch=None, limit_val_batches=4, enable_progress_bar=False, log_every_n_steps=25,
    )  # fmt: skip
    last = args.out / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=data, ckpt_path=last if last.exists() else None)


if __name__ == "__main__":
    main()
