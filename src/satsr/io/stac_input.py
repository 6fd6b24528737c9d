"""STAC Items (https://stacspec.org) as inputs: their band assets stacked into one raster.

Local files only: asset hrefs relative to the Item file or absolute local paths; nothing is downloaded.
Assets at different resolutions (Sentinel-2's 10 m and 20 m bands) are stacked on the finest grid, each
coarser pixel repeated (``satsr.io.vrt.stack_vrt``); assets are found by ``eo:bands`` name or by the
asset keys of the public STAC APIs (``satsr.io.bands.STAC_ASSET_KEYS``).
The output side (the Item written beside every output) is ``satsr.io.stac``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satsr.io.bands import S2_RGBN, ReflectanceScaling, canonical_band_name
from satsr.io.dates import DATE_SOURCE_TAG
from satsr.io.vrt import VRTError, stack_vrt


class StacInputError(ValueError):
    """A STAC Item that cannot be read as an input (not an Item, missing asset file, ...)."""


@dataclass(frozen=True)
class ItemInput:
    """What reading a STAC Item as a raster needs: the stacked bands, their DN scaling, tags."""

    vrt: str
    scaling: ReflectanceScaling | None
    tags: dict[str, str]


def is_stac_item(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".json"


def _asset_band(key: str, asset: Mapping[str, Any]) -> str | None:
    """The Sentinel-2 band an asset holds: its ``eo:bands`` name or common name, else its key (None for
    an asset of several bands, such as a true-colour picture)."""
    if len(asset.get("eo:bands", [])) > 1:
        return None
    candidates = [b.get(f) for b in asset.get("eo:bands", []) for f in ("name", "common_name")] + [key]
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                return canonical_band_name(candidate)
            except ValueError:
                continue
    return None


def read_item_input(path: str | Path, bands: Sequence[str] | None = None) -> ItemInput:
    """Stack the Item's assets for ``bands`` (default: the 10 m bands B02 B03 B04 B08 it has).

    Asset hrefs may be relative to the Item file or absolute local paths; nothing is downloaded.
    The raster extension's per-band ``scale``/``offset`` (reflectance = DN * scale + offset) sets
    the DN scaling when given.
    """
    path = Path(path)
    item = _load_item(path)
    by_band: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for key, asset in item["assets"].items():
        band = _asset_band(key, asset)
        if band is not None and "data" in asset.get("roles", ["data"]) and band not in by_band:
            by_band[band] = (key, asset)
    wanted = [canonical_band_name(b) for b in bands] if bands else [b for b in S2_RGBN if b in by_band]
    missing = [b for b in wanted if b not in by_band]
    if missing or not wanted:
        raise StacInputError(
            f"{path}: no asset for band(s) {', '.join(missing or S2_RGBN)} "
            f"(assets: {', '.join(item['assets'])})"
        )
    assets = {band: by_band[band] for band in wanted}
    _check_one_date(path, item, assets)
    files = {band: _local_file(path, key, band, asset) for band, (key, asset) in assets.items()}
    try:
        vrt = stack_vrt(files)
    except VRTError as err:
        raise StacInputError(f"{path}: {err}") from err
    tags = {}
    when = item.get("properties", {}).get("datetime")
    if isinstance(when, str):
        tags.update({"ACQUISITION_DATE": when, DATE_SOURCE_TAG: f"STAC Item {path.name} datetime"})
    return ItemInput(vrt, _scaling(path, [asset for _, asset in assets.values()]), tags)


def _check_one_date(path: Path, item: Mapping[str, Any], assets: Mapping[str, tuple[str, Any]]) -> None:
    """Refuse assets of other dates than the rest (an asset's own ``datetime`` overrides the Item's)."""
    default = item.get("properties", {}).get("datetime")
    dates = {band: asset.get("datetime", default) for band, (_, asset) in assets.items()}
    if len(set(dates.values())) > 1:
        listed = ", ".join(f"{band} {when}" for band, when in dates.items())
        raise StacInputError(f"{path}: the bands asked for were acquired at different times ({listed})")


def _load_item(path: Path) -> dict[str, Any]:
    """The Item's JSON, refused unless it is a Feature with assets."""
    try:
        item = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StacInputError(f"{path}: not a readable JSON file ({err})") from err
    if (
        not isinstance(item, dict)
        or item.get("type") != "Feature"
        or not isinstance(item.get("assets"), dict)
    ):
        raise StacInputError(f"{path}: not a STAC Item (a Feature with assets)")
    return item


def _local_file(path: Path, key: str, band: str, asset: Mapping[str, Any]) -> str:
    """The local file an asset's href names (relative to the Item, absolute, or ``file://``)."""
    href = str(asset.get("href", ""))
    if "://" in href and not href.startswith("file://"):
        raise StacInputError(f"{path}: asset {key} is remote ({href}); satsr reads local files only")
    local = Path(href.removeprefix("file://"))
    local = local if local.is_absolute() else path.parent / local
    if not local.exists():
        raise StacInputError(f"{path}: asset {key} ({band}) does not exist: {local}")
    return str(local)


def _scaling(path: Path, assets: Sequence[Mapping[str, Any]]) -> ReflectanceScaling | None:
    """The raster extension's scale/offset of the assets (one for all of them), None when undeclared."""
    scales = set()
    for asset in assets:
        raster_bands = asset.get("raster:bands") or [{}]
        scales.add((raster_bands[0].get("scale"), raster_bands[0].get("offset")))
    if len(scales) > 1:
        raise StacInputError(
            f"{path}: the assets' raster:bands scale/offset differ ({sorted(map(str, scales))})"
        )
    scale, offset = scales.pop()
    if not scale:
        return None
    return ReflectanceScaling(quantification=1 / float(scale), offset=float(offset or 0) / float(scale))
