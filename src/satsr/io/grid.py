"""What every raster module shares: a grid (CRS, transform, size), what an output needs of its input
(``RasterMeta``), and the one error a raster that cannot be used raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from satsr.io.bands import ReflectanceScaling


class RasterError(ValueError):
    """A raster that cannot be used, with a message naming the problem."""


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, transform and size."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, src: rasterio.io.DatasetReader) -> Grid:
        return cls(src.crs, src.transform, src.width, src.height)

    def matches(self, src: rasterio.io.DatasetReader) -> bool:
        same_size = (src.width, src.height) == (self.width, self.height)
        return same_size and src.crs == self.crs and src.transform.almost_equals(self.transform)


@dataclass(frozen=True)
class RasterMeta:
    """What an output needs from its input: grid, dtype, band names, nodata, DN scaling."""

    crs: CRS | None
    transform: Affine
    height: int
    width: int
    dtype: np.dtype
    band_names: tuple[str, ...]
    nodata: float | None
    scaling: ReflectanceScaling = field(default_factory=ReflectanceScaling)

    @property
    def grid(self) -> Grid:
        return Grid(self.crs, self.transform, self.width, self.height)

    def refined(self, scale: float) -> RasterMeta:
        """The same bounds on a grid ``scale`` times finer: ``round(height * scale)`` x
        ``round(width * scale)`` pixels (pixel size / scale for an integer scale)."""
        height, width = round(self.height * scale), round(self.width * scale)
        return dataclasses.replace(
            self, transform=self.transform @ Affine.scale(self.width / width, self.height / height),
            height=height, width=width,
        )  # fmt: skip
