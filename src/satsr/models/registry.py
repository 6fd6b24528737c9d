"""Bundled models: ``config.json`` (constructor arguments) + ``model.safetensors`` + ``MODEL_CARD.md``.

Loading needs no code execution and no network: the config names an architecture from
``ARCHITECTURES`` and holds its constructor arguments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from satsr.models.fast import ResidualSR

ARCHITECTURES: dict[str, type[nn.Module]] = {"ResidualSR": ResidualSR}
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Keys of config.json that describe the model rather than its constructor.
DESCRIPTIVE_KEYS = ("architecture", "bands", "summary")


class UnknownModelError(ValueError):
    """A model name that is neither bundled nor a folder with config.json."""


def bundled_models() -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted(BUNDLED_DIR.glob("*/config.json"))}


def read_config(folder: Path) -> dict:
    """A model folder's config.json (constructor arguments plus ``DESCRIPTIVE_KEYS``)."""
    config: dict = json.loads((folder / "config.json").read_text())
    return config


@dataclass
class Upscaler:
    """A loaded model, callable on (C, H, W) or (B, C, H, W) reflectance arrays or tensors.

    Deterministic models ignore ``seeds`` and refuse ``steps``; sampling models (the diffusion
    models) set ``stochastic`` and draw one sample per input, item ``i`` from ``seeds[i]``.
    """

    name: str
    network: nn.Module
    scale: int
    bands: tuple[str, ...]
    summary: str
    stochastic: bool = False  # True for models that draw samples (diffusion)
    default_steps: int | None = None  # sampling steps when not given; None for deterministic models

    def __call__(
        self, lr: np.ndarray | Tensor, seeds: Sequence[int] | None = None, steps: int | None = None
    ) -> np.ndarray | Tensor:
        if steps is not None and not self.stochastic:
            raise ValueError(f"{self.name} is a deterministic model: it takes no sampling steps")
        as_numpy = isinstance(lr, np.ndarray)
        x: Tensor = torch.from_numpy(np.asarray(lr, dtype=np.float32)) if isinstance(lr, np.ndarray) else lr
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise ValueError(
                f"{self.name} expects {len(self.bands)} bands ({', '.join(self.bands)}) "
                f"as (C,H,W) or (B,C,H,W); got shape {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values; mask them before calling the model")
        param = next(self.network.parameters())
        with torch.inference_mode():
            y = self.network(x.to(param.device, param.dtype).contiguous(memory_format=torch.channels_last))
        y = y.contiguous()[0] if single else y.contiguous()
        return y.cpu().numpy() if as_numpy else y


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    return device


def load(name: str | Path, device: str = "cpu") -> Upscaler:
    """Load a bundled model by name, or a model folder holding config.json + model.safetensors."""
    path = Path(name)
    folder = bundled_models().get(str(name)) or (path if (path / "config.json").is_file() else None)
    if folder is None:
        known = ", ".join(bundled_models()) or "none"
        raise UnknownModelError(
            f"unknown model {str(name)!r}; bundled models: {known}; or pass a model folder"
        )
    config = read_config(folder)
    architecture = config.get("architecture")
    if architecture not in ARCHITECTURES:
        raise UnknownModelError(f"{folder}: unknown architecture {architecture!r}")
    kwargs = {k: v for k, v in config.items() if k not in DESCRIPTIVE_KEYS}
    network = ARCHITECTURES[architecture](**kwargs)
    network.load_state_dict(load_file(folder / "model.safetensors"))
    network = network.eval().to(resolve_device(device))
    network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
    return Upscaler(
        folder.name, network, int(config["scale"]), tuple(config["bands"]), config.get("summary", "")
    )
