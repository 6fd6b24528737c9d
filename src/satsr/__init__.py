"""satsr: super-resolution of satellite imagery with fast CNNs and latent diffusion models.

``load``, ``upscale_file`` and ``upscale_dataarray`` are imported on first use, so that importing
satsr (and ``satsr --help``) does not pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satsr.defaults import VERSION as __version__

if TYPE_CHECKING:
    from satsr.models.registry import load
    from satsr.pipelines import upscale_dataarray, upscale_file

__all__ = ["__version__", "load", "upscale_dataarray", "upscale_file"]
_LAZY = {
    "load": "satsr.models.registry",
    "upscale_file": "satsr.pipelines",
    "upscale_dataarray": "satsr.pipelines",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'satsr' has no attribute {name!r}")
