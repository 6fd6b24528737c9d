"""``satsr train``: LightningCLI over any satsr LightningModule and data module (fit, validate, test).

The config names the module (``model: class_path: satsr.training.regression.SRRegression``, the
autoencoder, the latent diffusion module or a ``satsr.training.continuous`` one); each module checks
in ``setup`` that its bands and scale match the data. The data module is ``SRDataModule`` unless the
config names another (``data: class_path: satsr.data.continuous.ContinuousDataModule``). Example:
``satsr train fit --config configs/s2-rgbn-x4-fast.yaml`` (resume: add ``--ckpt_path last``).
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from satsr.data.datamodules import SRDataModule


class SRTrainCLI(LightningCLI):
    """LightningCLI with the fit / validate / test subcommands only; ``SRDataModule`` is the default data."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"data": {"class_path": f"{SRDataModule.__module__}.{SRDataModule.__name__}"}})

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "test": {"model", "dataloaders", "datamodule"},
        }


def main(argv: list[str] | None = None) -> int:
    """Run ``satsr train`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    kwargs: dict[str, Any] = {
        "args": argv,
        "auto_configure_optimizers": False,  # SRRegression.configure_optimizers owns AdamW and the schedule
        "save_config_kwargs": {"overwrite": True},
        "seed_everything_default": 0,
        "parser_kwargs": {"prog": "satsr train"},
    }
    with warnings.catch_warnings():
        # `satsr train fit ...` passes the arguments after "train" while sys.argv still holds them all.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        SRTrainCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            **kwargs,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
