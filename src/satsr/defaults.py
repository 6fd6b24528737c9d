"""Defaults shared by the command line and the Python API, defined once and importable without torch
(so ``satsr --help`` stays fast)."""

from __future__ import annotations

#: Seed of every sample unless ``--seed`` says otherwise.
DEFAULT_SEED = 0
#: The model ``satsr upscale`` and ``satsr evaluate`` use unless ``--model`` says otherwise.
DEFAULT_MODEL = "s2-rgbn-x4-fast"
#: ``satsr fuse``: its bundled model, DDIM steps, and the clear share below which a revisit is dropped.
DEFAULT_FUSION_MODEL = "s2-rgbn-x4-fusion"
DEFAULT_FUSION_STEPS = 50
DEFAULT_MIN_CLEAR = 0.5
