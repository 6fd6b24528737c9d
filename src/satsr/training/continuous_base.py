"""What the continuous-scale training modules (``satsr.training.continuous``) share: the batch's scale
and HR grid, the network built from its config (or a trained stage's folder), band statistics, and
validation by L1, PSNR and, where AlexNet can score it, LPIPS against bicubic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from satsr.evaluation.metrics import psnr
from satsr.models.continuous import ContinuousSR
from satsr.models.implicit import regular_grid
from satsr.nn.lpips import LPIPS_MIN_SIDE, lpips


def batch_scale(lr: Tensor, hr: Tensor) -> float:
    """The batch's scale ``hr / lr`` (square patches, one scale per batch)."""
    if lr.shape[-1] != lr.shape[-2] or hr.shape[-1] != hr.shape[-2]:
        raise ValueError(f"expected square patches, got LR {tuple(lr.shape)} and HR {tuple(hr.shape)}")
    return hr.shape[-1] / lr.shape[-1]


def hr_grid(lr: Tensor, hr: Tensor) -> Tensor:
    """LR coordinates of the HR pixel centres, (1, H, W, 2)."""
    return regular_grid((lr.shape[-2], lr.shape[-1]), (hr.shape[-2], hr.shape[-1]), lr.device)[None]


class ContinuousModule(L.LightningModule):
    """Shared parts: the ``ContinuousSR`` network from JSON-able arguments, band statistics from the
    datamodule when not given (stored in every checkpoint), validation metrics."""

    def __init__(
        self, network: dict[str, Any], query_crop: int | None = None, init_dir: str | None = None
    ) -> None:
        super().__init__()
        weights = None
        if init_dir is not None:  # continue from exported weights (its architecture, ``network`` on top)
            config, weights = read_network(Path(init_dir), prior=network.get("prior"))
            network = {**config, **network}
        self.network_kwargs: dict[str, Any] = dict(network)
        self.network = ContinuousSR(**self.network_kwargs)
        if weights is not None:
            load_grown(self.network, weights)
        if query_crop is not None and query_crop < 1:
            raise ValueError(f"query_crop must be a positive number of HR pixels, got {query_crop}")
        self.query_crop = query_crop

    def query_window(self, lr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor]:
        """Training queries and their targets: the whole HR grid, or with ``query_crop`` one random
        window of that many HR pixels a side (the same for the batch; the prior still covers the
        whole patch). A training shortcut, not in the paper: at x8 the upsampler's pixel MLP on all
        of a 384 px patch dominates the step time on a CPU."""
        coords = hr_grid(lr, hr)
        crop, (height, width) = self.query_crop, hr.shape[-2:]
        if crop is None or (height <= crop and width <= crop):
            return coords, hr
        top = int(torch.randint(0, max(1, height - crop + 1), ()))
        left = int(torch.randint(0, max(1, width - crop + 1), ()))
        window = (slice(top, top + crop), slice(left, left + crop))
        return coords[:, window[0], window[1]], hr[..., window[0], window[1]]

    def network_config(self) -> dict[str, Any]:
        """Constructor arguments of ``network``: the bundled ``config.json`` minus its descriptive keys."""
        return {"architecture": "ContinuousSR", **self.network_kwargs}

    def has_band_statistics(self) -> bool:
        return (
            self.network_kwargs.get("band_mean") is not None
            and self.network_kwargs.get("band_std") is not None
        )

    def set_band_statistics(self, band_mean: Sequence[float], band_std: Sequence[float]) -> None:
        self.network_kwargs["band_mean"], self.network_kwargs["band_std"] = list(band_mean), list(band_std)
        c = len(band_mean)
        self.network.band_mean.copy_(torch.tensor(band_mean, dtype=torch.float32).view(1, c, 1, 1))
        self.network.band_std.copy_(torch.tensor(band_std, dtype=torch.float32).view(1, c, 1, 1))

    def fresh_datamodule(self) -> Any:
        """The trainer's data module when a run starts afresh; None when it restores a checkpoint (which
        holds what setup would measure) or without a trainer or data module."""
        if self._trainer is None or self.trainer.ckpt_path is not None:
            return None
        return getattr(self.trainer, "datamodule", None)

    def setup(self, stage: str) -> None:
        datamodule = self.fresh_datamodule()
        if not self.has_band_statistics() and hasattr(datamodule, "band_statistics"):
            self.set_band_statistics(*datamodule.band_statistics())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["network_config"] = self.network_config()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("network_config", {})
        if saved.get("band_mean") is not None and saved.get("band_std") is not None:
            self.set_band_statistics(saved["band_mean"], saved["band_std"])

    def predict(self, lr: Tensor, hr: Tensor) -> Tensor:
        """The validation output for a batch (unclamped)."""
        raise NotImplementedError

    def _evaluate(self, batch: tuple[Tensor, Tensor], prefix: str) -> None:
        lr, hr = batch
        with torch.no_grad():
            sr = self.predict(lr, hr).clamp(0, 1)
        bicubic = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        metrics = {
            f"{prefix}/l1": F.l1_loss(sr, hr),
            f"{prefix}/psnr": psnr(sr, hr).mean(),
            f"{prefix}/psnr_bicubic": psnr(bicubic, hr).mean(),
        }
        if hr.shape[1] == 3 and min(hr.shape[-2:]) >= LPIPS_MIN_SIDE:  # what AlexNet-LPIPS can score
            metrics[f"{prefix}/lpips"] = lpips(sr, hr, normalize=True).mean()
            metrics[f"{prefix}/lpips_bicubic"] = lpips(bicubic, hr, normalize=True).mean()
        self.log_dict(metrics, prog_bar=prefix == "val", batch_size=lr.shape[0])

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")


#: Parameters that weights trained without them may lack; they start at zero (same outputs as before).
GROWN_PARAMETERS = ("upsampler.detail.weight",)


def load_grown(network: ContinuousSR, weights: dict[str, Tensor]) -> None:
    """``weights`` into ``network``; parameters the network has added since (``GROWN_PARAMETERS``, e.g.
    the prior's detail path, ``prior_detail=True``) keep their zero initialisation, and refinement
    units deeper than the weights' (a larger ``blocks_per_unit``) get their extra IMDBs as the identity
    (``_deepened``): the grown network's output is the old one's."""
    try:
        missing, unexpected = network.load_state_dict(_deepened(network, weights), strict=False)
    except RuntimeError as error:  # a shape that differs, e.g. another width
        first = "; ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise ValueError(f"the weights do not fit the network: {first}...") from None
    wrong = [k for k in missing if k not in GROWN_PARAMETERS] + list(unexpected)
    if wrong:
        raise ValueError(f"the weights do not fit the network: {wrong[:3]}...")


def _deepened(network: ContinuousSR, weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """``weights`` of refinement units with fewer IMDBs than ``network``'s, made to fit: each extra
    block keeps its initialisation but a zero ``fuse`` (so it passes its input on unchanged), and the
    unit's 1x1 ``compress`` gets zero columns for the extra blocks' outputs."""
    state = network.state_dict()
    out = dict(weights)
    for key, value in weights.items():
        if not key.endswith(".compress.weight") or key not in state or state[key].shape == value.shape:
            continue
        target = state[key]
        channels = target.shape[0]
        wider = value.shape[1] < target.shape[1]
        if value.shape[0] != channels or not wider or value.shape[2:] != target.shape[2:]:
            continue  # not a deepening: load_state_dict names the mismatch
        padded = torch.zeros_like(target)
        padded[:, : value.shape[1]] = value
        out[key] = padded
        unit = key[: -len("compress.weight")]
        for k in range(value.shape[1] // channels, target.shape[1] // channels):
            block = f"{unit}blocks.{k}."
            for name, init in state.items():
                if name.startswith(block):
                    out[name] = torch.zeros_like(init) if name.startswith(f"{block}fuse.") else init
    return out


def read_network(folder: Path, prior: bool | None = None) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """An exported ``ContinuousSR`` folder's constructor arguments and weights; ``prior``: the kind it
    must be (with or without the differential prior), None: either."""
    config = json.loads((folder / "config.json").read_text())
    kind = "with" if prior else "without"
    if config.get("architecture") != "ContinuousSR":
        raise ValueError(f"{folder} does not hold a ContinuousSR")
    if prior is not None and bool(config.get("prior", True)) != prior:
        raise ValueError(f"{folder} does not hold a ContinuousSR {kind} a prior")
    kwargs = {k: v for k, v in config.items() if k not in ("architecture", "bands", "summary")}
    return kwargs, load_file(folder / "model.safetensors")
