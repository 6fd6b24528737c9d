"""satsr: super-resolution of satellite imagery with fast CNNs and latent diffusion models."""

__version__ = "0.1.0"
