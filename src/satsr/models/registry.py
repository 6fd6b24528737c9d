"""Bundled models: ``config.json`` (constructor arguments) + ``model.safetensors`` + ``MODEL_CARD.md``.

Loading needs no code execution and no network: the config names an architecture from
``ARCHITECTURES`` and holds its constructor arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from satsr.defaults import DEFAULT_SCALE
from satsr.io.bands import S2_BANDS, canonical_band_name
from satsr.models.continuous import ContinuousSR
from satsr.models.fast import ResidualSR
from satsr.models.ldm import LatentDiffusionSR
from satsr.models.revisit_fusion import FusionConfig, fuse_revisits, revisit_conditioning
from satsr.models.ten_band import GRID_MULTIPLE, TEN_BAND_SCALES, TenBandSR

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "ResidualSR": ResidualSR, "LatentDiffusionSR": LatentDiffusionSR, "ContinuousSR": ContinuousSR,
    "TenBandSR": TenBandSR,
}  # fmt: skip
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
    models) set ``stochastic`` and draw one sample per input, item ``i`` from ``seeds[i]`` (default:
    ``i``). ``origins`` gives tiles' LR offsets within one scene, so that a sampler can share noise
    between overlapping tiles (see ``satsr.models.ldm.field_noise``).

    ``continuous`` models (``ContinuousSR``) take any real ``scale`` in ``[1, MAX_SCALE]`` (``scale``
    is then their default) and, with ``coords`` (B or 1, H, W, 2), return values at those LR
    coordinates instead of the regular grid of ``round(h * scale)`` x ``round(w * scale)`` pixels.
    """

    name: str
    network: nn.Module
    scale: int
    bands: tuple[str, ...]
    summary: str
    stochastic: bool = False  # True for models that draw samples (diffusion)
    default_steps: int | None = None  # sampling steps when not given; None for deterministic models
    weights_sha256: str = ""  # of model.safetensors, recorded with every output
    source: str = ""  # what load() was given (bundled name or folder), so other processes can load it too
    continuous: bool = False  # any real scale (ContinuousSR); ``scale`` is the default one
    scales: tuple[int, ...] = ()  # the fixed scales a model serves besides ``scale`` (TenBandSR: 1, 2, 4)
    grid_multiple: int = 1  # windows start and end on multiples of this many input pixels
    input_bands: tuple[str, ...] = ()  # the bands it reads, where not ``bands`` (see ``select_outputs``)
    outputs: tuple[int, ...] = ()  # which of the network's output bands are returned (all when empty)

    @property
    def needs_all_bands(self) -> bool:
        """Whether every input band is needed whatever is asked (``--bands`` then picks the outputs)."""
        return isinstance(self.network, TenBandSR)

    def at_scale(self, scale: float) -> Upscaler:
        """This model running at ``scale`` by default: one of the fixed scales it serves."""
        if scale == self.scale:
            return self
        if scale not in self.scales:
            served = " or ".join(map(str, sorted({self.scale, *self.scales})))
            raise ValueError(f"{self.name} supports scale {served} only, got {scale:g}")
        return replace(self, scale=int(scale))

    @property
    def reads(self) -> tuple[str, ...]:
        """The bands the model takes, in its order."""
        return self.input_bands or self.bands

    def select_outputs(self, bands: Sequence[str]) -> Upscaler:
        """This model returning only ``bands`` (names, in the order asked) of what it computes from all of
        its input bands: how ``--bands`` picks the output bands of a model whose every input band is
        needed (``s2-10band``). A band it does not compute is a clear error."""
        names = []
        for band in bands:
            try:
                names.append(canonical_band_name(str(band)))
            except ValueError as err:
                raise ValueError(f"{self.name}: {err}") from err
        missing = [b for b in names if b not in self.reads]
        if missing:
            why = [f"{b} ({S2_BANDS[b].gsd_m:g} m band)" if b in S2_BANDS else b for b in missing]
            raise ValueError(
                f"{self.name} does not give band(s) {', '.join(why)}; it gives {', '.join(self.reads)}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a band is asked for twice ({', '.join(names)})")
        return replace(
            self,
            bands=tuple(names),
            input_bands=self.reads,
            outputs=tuple(self.reads.index(b) for b in names),
        )

    def __call__(
        self,
        lr: np.ndarray | Tensor,
        seeds: Sequence[int] | None = None,
        steps: int | None = None,
        origins: Sequence[tuple[int, int]] | None = None,
        scale: float | None = None,
        coords: Tensor | None = None,
    ) -> np.ndarray | Tensor:
        if steps is not None and not self.stochastic:
            raise ValueError(f"{self.name} is a deterministic model: it takes no sampling steps")
        if not self.continuous and (coords is not None or scale not in (None, self.scale, *self.scales)):
            served = ", ".join(map(str, sorted({self.scale, *self.scales})))
            raise ValueError(f"{self.name} supports scale {served} only, on its own grid")
        as_numpy = isinstance(lr, np.ndarray)
        x: Tensor = torch.from_numpy(np.asarray(lr, dtype=np.float32)) if isinstance(lr, np.ndarray) else lr
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != len(self.reads):
            raise ValueError(
                f"{self.name} expects {len(self.reads)} bands ({', '.join(self.reads)}) "
                f"as (C,H,W) or (B,C,H,W); got shape {tuple(x.shape)}"
            )
        if not _all_finite(x):
            raise ValueError("input contains NaN or infinite values; mask them before calling the model")
        param = next(self.network.parameters())
        x = x.to(param.device, param.dtype).contiguous(memory_format=torch.channels_last)
        extra: dict = {"scale": scale or self.scale, "coords": coords} if self.continuous else {}
        if self.scales:
            extra = {"scale": scale or self.scale}
        with torch.inference_mode():
            if self.stochastic:
                seeds = list(range(len(x))) if seeds is None else list(seeds)
                y = self.network.sample(x, seeds, steps, origins, **extra)  # type: ignore[operator]
            else:
                y = self.network(x, **extra)
        if self.outputs:
            y = y[:, list(self.outputs)]
        y = y.contiguous()[0] if single else y.contiguous()
        return y.cpu().numpy() if as_numpy else y

    @property
    def fusion_config(self) -> FusionConfig:
        """The settings the model fuses revisits with (its config.json ``fusion`` entry)."""
        return self._fusable().fusion

    def fusion_steps(self, config: FusionConfig) -> int:
        """The sampler steps a fusion with ``config`` runs with this model."""
        return config.steps_for(self._fusable())

    def _fusable(self) -> LatentDiffusionSR:
        if not isinstance(self.network, LatentDiffusionSR):
            raise ValueError(f"model {self.name} cannot fuse revisits (use a latent diffusion model)")
        return self.network

    @property
    def can_fuse(self) -> bool:
        """Whether the model fuses revisits of one place (``satsr.models.revisit_fusion``)."""
        return isinstance(self.network, LatentDiffusionSR)

    def fuse(
        self,
        revisits: np.ndarray,
        dt_days: Sequence[float],
        seed: int,
        config: FusionConfig | None = None,  # default: the model's own (``fusion_config``)
        origin: tuple[int, int] = (0, 0),
    ) -> np.ndarray:
        """One image ``(C, H, W)`` from revisits ``(N, C, h, w)`` of one place (reflectance, masked pixels
        filled), ``dt_days[i]`` = target date minus revisit ``i``'s; ``origin``: the window's LR offset in
        its scene (scene-wide noise)."""
        network = self._fusable()
        param = next(network.parameters())
        lrs = torch.from_numpy(np.asarray(revisits, np.float32)).to(param.device, param.dtype)
        with torch.no_grad():  # not inference_mode: the center search takes gradients
            cond = revisit_conditioning(lrs, dt_days, self.scale)
            fused = fuse_revisits(network, cond, seed, config or network.fusion, origin)
        return fused[0].float().cpu().numpy()


def _all_finite(x: Tensor) -> bool:
    """Whether a tensor holds no NaN or infinity; with numpy on the CPU, where torch.isfinite took 40 ms
    for a batch of four 128 px windows and numpy 0.1 ms."""
    if x.device.type == "cpu" and x.dtype in (torch.float16, torch.float32, torch.float64):
        return bool(np.isfinite(x.detach().numpy()).all())
    return bool(torch.isfinite(x).all())


def set_lr_consistency(upscaler: Upscaler, on: bool) -> None:
    """Switch a model's LR-consistency projection (see ``satsr.models.consistency``) on or off."""
    if not hasattr(upscaler.network, "lr_consistency"):
        raise ValueError(f"{upscaler.name} has no LR-consistency switch (only the diffusion models have one)")
    setattr(upscaler.network, "lr_consistency", on)  # noqa: B010  (an nn.Module attribute, not a Tensor)


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
    bundled = bundled_models()
    folder = bundled.get(str(name)) or (path if (path / "config.json").is_file() else None)
    if folder is None:
        known = ", ".join(bundled) or "none"
        raise UnknownModelError(
            f"unknown model {str(name)!r}; bundled models: {known}; or pass a model folder"
        )
    source = str(name) if str(name) in bundled else str(folder.resolve())
    config = read_config(folder)
    architecture = config.get("architecture")
    if architecture not in ARCHITECTURES:
        raise UnknownModelError(f"{folder}: unknown architecture {architecture!r}")
    kwargs = {k: v for k, v in config.items() if k not in DESCRIPTIVE_KEYS}
    if "bands" in inspect.signature(ARCHITECTURES[architecture]).parameters:
        kwargs["bands"] = config["bands"]
    network = ARCHITECTURES[architecture](**kwargs)
    network.load_state_dict(load_file(folder / "model.safetensors"))
    network = network.eval().to(resolve_device(device))
    network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
    stochastic = bool(getattr(network, "stochastic", False))
    continuous = isinstance(network, ContinuousSR)
    scale = round(DEFAULT_SCALE) if continuous else int(config["scale"])
    steps = getattr(network, "default_steps", None)
    if isinstance(network, ContinuousSR) and stochastic:
        steps = len(network.betas)
    ten_band = isinstance(network, TenBandSR)
    return Upscaler(
        folder.name, network, scale, tuple(config["bands"]), config.get("summary", ""),
        stochastic, steps if stochastic else None, file_sha256(folder / "model.safetensors"), source,
        continuous, TEN_BAND_SCALES if ten_band else (), GRID_MULTIPLE if ten_band else 1,
    )  # fmt: skip


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
