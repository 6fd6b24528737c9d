"""Defaults shared by the command line and the Python API, each defined once and importable without
torch or GDAL (so ``satsr --help`` stays fast)."""

from __future__ import annotations

#: The package version, recorded with every output (``SATSR_VERSION``, the STAC Item's software).
VERSION = "0.1.0"
#: Seed of every sample unless ``--seed`` says otherwise.
DEFAULT_SEED = 0
#: The model ``satsr upscale`` and ``satsr evaluate`` use unless ``--model`` says otherwise.
DEFAULT_MODEL = "s2-rgbn-x4-fast"
#: Super-resolution factor of a model that takes any scale, unless asked for another.
DEFAULT_SCALE = 4.0
#: LR tile side and overlap, pixels, and tiles per model call.
DEFAULT_TILE_SIZE = 128
DEFAULT_OVERLAP = 16
DEFAULT_BATCH_SIZE = 4
#: ``satsr fuse``: its bundled model, DDIM steps, and the clear share below which a revisit is dropped.
DEFAULT_FUSION_MODEL = "s2-rgbn-x4-fusion"
DEFAULT_MIN_CLEAR = 0.5
