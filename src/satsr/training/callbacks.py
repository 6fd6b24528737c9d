"""Export of a trained network in the bundled-model format that ``satsr.load`` reads."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from safetensors.torch import save_file


def averaged_module(trainer: L.Trainer, pl_module: L.LightningModule) -> L.LightningModule:
    """The weight-averaged (e.g. EMA) copy of ``pl_module`` when a ``WeightAveraging`` callback keeps
    one, else ``pl_module``: exports carry the weights that validation scored."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        average = getattr(callback, "_average_model", None) if isinstance(callback, WeightAveraging) else None
        if average is not None:
            module: L.LightningModule = average.module
            return module
    return pl_module


class ExportBundled(L.Callback):
    """Write ``out_dir/config.json`` + ``model.safetensors`` (``satsr.models.registry``'s format) and
    ``train_log.json`` (steps, wall minutes summed over resumed runs, last validation metrics).

    The LightningModule must expose ``network`` and ``network_config()`` (as ``SRRegression`` does).
    With a ``WeightAveraging`` callback (EMA) the averaged weights are exported.
    ``MODEL_CARD.md`` is left to a person: it records measurements this callback cannot make.
    """

    def __init__(
        self,
        out_dir: Path,  # model folder to write; loadable with satsr.load(out_dir)
        name: str = "",  # model name for the log; default: the folder name
        bands: Sequence[str] | None = None,  # band names of the model; default: the datamodule's bands
        summary: str = "",  # one-line description stored in config.json
        every_validation: bool = False,  # also export after every validation run, not only at the end
    ) -> None:
        self.out_dir, self.name, self.bands, self.summary = Path(out_dir), name, bands, summary
        self.every_validation = every_validation
        self.minutes_before = 0.0  # wall minutes of earlier (resumed) runs
        self.started = time.monotonic()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def wall_minutes(self) -> float:
        return self.minutes_before + (time.monotonic() - self.started) / 60

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_validation and not trainer.sanity_checking and trainer.state.fn == "fit":
            self.export(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.export(trainer, pl_module)

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        """Write the model folder now; returns it."""
        if not trainer.is_global_zero:
            return self.out_dir
        bands = (
            self.bands
            if self.bands is not None
            else getattr(getattr(trainer, "datamodule", None), "bands", None)
        )
        if bands is None:
            raise ValueError("ExportBundled needs bands (none given and the datamodule has none)")
        config: dict[str, Any] = pl_module.network_config()  # type: ignore[operator]
        pl_module = averaged_module(trainer, pl_module)
        config = {"architecture": config.pop("architecture"), "bands": list(bands), **config}
        if self.summary:
            config["summary"] = self.summary
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = pl_module.network.state_dict()  # type: ignore[union-attr]
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.items()}, self.out_dir / "model.safetensors"
        )
        (self.out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))
        }
        log = {
            "name": self.name or self.out_dir.name,
            "steps": trainer.global_step,
            "epochs": trainer.current_epoch,
            "wall_minutes": round(self.wall_minutes(), 5),  # a tiny run lasts well under 0.001 min
            "metrics": metrics,
        }
        (self.out_dir / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
        return self.out_dir

    def state_dict(self) -> dict[str, Any]:
        return {"wall_minutes": self.wall_minutes()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.minutes_before = float(state_dict.get("wall_minutes", 0.0))
