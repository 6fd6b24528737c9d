"""Which of an input's bands a model gets: by name where the input names them, else in order with a
warning; one rule for files (``open_for_model``) and arrays (``select_array_bands``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from satsr.io.bands import ReflectanceScaling, canonical_band_name
from satsr.io.grid import Grid, RasterError
from satsr.io.raster import RasterReader
from satsr.io.safe import is_safe
from satsr.io.stac_input import is_stac_item
from satsr.models.registry import Upscaler

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger("satsr.pipelines")


def _model_band_names(upscaler: Upscaler) -> list[str] | None:
    """The bands the model reads as canonical Sentinel-2 names (red, green, blue: B04, B03, B02), else
    None."""
    try:
        return [canonical_band_name(b) for b in upscaler.reads]
    except ValueError:
        return None


def open_for_model(
    input: str | Path,
    bands: Sequence[str | int] | None,
    upscaler: Upscaler,
    scaling: ReflectanceScaling | None = None,
    mask_clouds: bool = False,
    grid: Grid | None = None,
    more: Sequence[Path] = (),
) -> RasterReader:
    """The input's bands as the model takes them, by name where the input names them; ``more``: rasters
    with more of its bands on coarser grids (``satsr.io.inputs.stack_files``).

    Without ``bands``, named inputs give the model's bands in its order (any extra bands are left out);
    unnamed ones are taken as the model's bands in file order, with a warning saying so. Bands picked
    by name in another order than the model's are put in its order. Refuses a band count the model
    does not take, naming the bands.
    """
    if bands is None and upscaler.needs_all_bands and (is_safe(input) or is_stac_item(input)):
        bands = list(upscaler.reads)  # products and Items give their 10 m bands unless asked for more
    reader = RasterReader(input, bands, scaling, mask_clouds, grid, more)
    names, wanted = list(reader.meta.band_names), _model_band_names(upscaler)
    by_name = reader.named and wanted is not None and names != wanted and set(wanted) <= set(names)
    if by_name and wanted is not None and (bands is None or sorted(names) == sorted(wanted)):
        indexes = [reader.indexes[names.index(b)] for b in wanted]  # pick or reorder by name
        reader.close()
        reader, names = RasterReader(input, indexes, scaling, mask_clouds, grid, more), wanted
    if len(names) != len(upscaler.reads):
        reader.close()
        missing = [b for b in wanted or () if b not in names]
        lacks = f" and lacks {', '.join(missing)}" if missing and reader.named else ""
        raise RasterError(
            f"{input}: model {upscaler.name} needs {len(upscaler.reads)} bands "
            f"({', '.join(upscaler.reads)}), the input has {len(names)} ({', '.join(names)}){lacks}; "
            + ("" if upscaler.needs_all_bands else "select them with --bands")
        )
    if reader.named and wanted is not None and names != wanted:
        log.warning("%s: bands %s are given to model %s as its %s", input, ", ".join(names), upscaler.name,
                    ", ".join(upscaler.reads))  # fmt: skip
    elif not reader.named and bands is None:
        log.warning(
            "%s: its bands have no names (no band descriptions, none in the file name); taken as %s, the "
            "bands of model %s, in file order (--bands picks others by 1-based index)",
            input, ", ".join(upscaler.reads), upscaler.name,
        )  # fmt: skip
    return reader


def _band_names(da: xr.DataArray, band_dim: str) -> list[str] | None:
    """The bands' names: the band coordinate when it holds names, else rioxarray's ``long_name``
    attribute (the file's band descriptions) when it has one per band."""
    names = da.coords[band_dim].values.tolist() if band_dim in da.coords else None
    if names and all(isinstance(n, str) for n in names):
        return names
    long_name = da.attrs.get("long_name")
    if not isinstance(long_name, list | tuple) or len(long_name) != da.sizes[band_dim]:
        return None
    return [str(n) for n in long_name] if all(isinstance(n, str) and n for n in long_name) else None


def _canonical(name: str) -> str:
    """A Sentinel-2 band name for any spelling of one ("red", "b4"), else the name itself."""
    try:
        return canonical_band_name(name)
    except ValueError:
        return name


def select_array_bands(da: xr.DataArray, band_dim: str, upscaler: Upscaler) -> xr.DataArray:
    """The model's bands, by name when the array names them (``_band_names``), else by count, with a
    warning that they are taken as the model's bands in order."""
    names = _band_names(da, band_dim)
    if names is not None and band_dim in da.coords and names != da.coords[band_dim].values.tolist():
        da = da.assign_coords({band_dim: names})
    if names:
        canonical = {_canonical(n): n for n in names}
        missing = [b for b in upscaler.reads if _canonical(b) not in canonical]
        if missing:
            raise ValueError(
                f"model {upscaler.name} needs bands {', '.join(upscaler.reads)}; the array lacks "
                f"{', '.join(missing)} (has {', '.join(map(str, names))})"
            )
        return da.sel({band_dim: [canonical[_canonical(b)] for b in upscaler.reads]})
    if da.sizes[band_dim] != len(upscaler.reads):
        raise ValueError(
            f"model {upscaler.name} needs {len(upscaler.reads)} bands ({', '.join(upscaler.reads)}), "
            f"the array has {da.sizes[band_dim]} along {band_dim!r}"
        )
    log.warning(
        "the array's bands have no names (no band names along %r, no long_name); taken as %s, the bands of "
        "model %s, in order", band_dim, ", ".join(upscaler.reads), upscaler.name,
    )  # fmt: skip
    return da
