"""satsr: super-resolution of satellite imagery with fast CNNs and latent diffusion models."""

__version__ = "0.1.0"

from satsr.dataarray import upscale_dataarray
from satsr.models.registry import load
from satsr.pipelines import upscale_file

__all__ = ["__version__", "load", "upscale_dataarray", "upscale_file"]
