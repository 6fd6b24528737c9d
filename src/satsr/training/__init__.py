"""LightningModules, callbacks and the ``satsr train`` LightningCLI entry point."""

from satsr.training.callbacks import ExportBundled
from satsr.training.regression import SRRegression

__all__ = ["ExportBundled", "SRRegression"]
