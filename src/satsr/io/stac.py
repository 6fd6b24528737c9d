"""A STAC Item (https://stacspec.org, v1.0.0) beside every output: where it is, how it was made.

It records the footprint (WGS84 geometry and bbox), the grid (projection extension), the acquisition
time as ``datetime`` and where it came from (``satsr:datetime_from``; the processing time is
``created``), the inputs it derives from, and the provenance a user needs to reproduce it: model
name, sha256 of the weights, sampler steps, seed, samples and the satsr version (processing
extension + ``satsr:`` fields). Items read as inputs are ``satsr.io.stac_input``.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rasterio.warp import transform_bounds

from satsr.io.dates import Acquired, rfc3339
from satsr.io.grid import RasterMeta

STAC_VERSION = "1.0.0"
EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
]


def stac_path(output: str | Path) -> Path:
    """``OUTPUT-stem.json`` beside the output."""
    output = Path(output)
    return output.with_name(f"{output.stem}.json")


def _footprint(meta: RasterMeta) -> tuple[list[float], dict[str, Any]] | tuple[None, None]:
    """WGS84 bbox and polygon of the raster's bounds (None without a CRS)."""
    if meta.crs is None:
        return None, None
    t = meta.transform
    xs = (t.c, t.c + t.a * meta.width)
    ys = (t.f, t.f + t.e * meta.height)
    west, south, east, north = transform_bounds(meta.crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys))
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return [west, south, east, north], {"type": "Polygon", "coordinates": [ring]}


def _time_properties(acquired: Acquired | None, created: datetime.datetime) -> dict[str, Any]:
    """STAC ``datetime`` (the acquisition time; the day as start/end when only the day is known), where it
    came from, and the processing time as ``created`` and ``processing:datetime``."""
    props: dict[str, Any] = {"created": rfc3339(created), "processing:datetime": rfc3339(created)}
    if acquired is None:  # STAC needs a datetime; this one is marked as the processing time
        return {
            "datetime": rfc3339(created), "satsr:datetime_source": "processing",
            "satsr:datetime_from": "no acquisition time in the input's tags, metadata or name", **props,
        }  # fmt: skip
    props.update({"datetime": acquired.rfc3339(), "satsr:datetime_source": "acquisition"})
    props["satsr:datetime_from"] = acquired.source
    if acquired.date_only:
        day_end = acquired.when + datetime.timedelta(days=1, seconds=-1)
        props.update({"start_datetime": acquired.rfc3339(), "end_datetime": rfc3339(day_end)})
    return props


def build_item(
    output: Path,
    out_meta: RasterMeta,
    inputs: Sequence[Path],
    acquired: Acquired | None,
    provenance: Mapping[str, Any],
    assets: Mapping[str, tuple[Path, str, list[str]]],
) -> dict[str, Any]:
    """The Item of ``output``: ``datetime`` is the acquisition time ``acquired`` (the processing time,
    marked so, when unknown), one ``derived_from`` link per input; ``assets`` maps a key to (file,
    title, roles), hrefs made relative."""
    bbox, geometry = _footprint(out_meta)
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    epsg = out_meta.crs.to_epsg() if out_meta.crs is not None else None
    properties: dict[str, Any] = {
        **_time_properties(acquired, created),
        "proj:epsg": epsg,
        "proj:wkt2": None if epsg is not None or out_meta.crs is None else out_meta.crs.to_wkt(),
        "proj:shape": [out_meta.height, out_meta.width],
        "proj:transform": list(out_meta.transform)[:6],
        "processing:software": {"satsr": str(provenance.get("version", ""))},
        **{f"satsr:{k}": v for k, v in provenance.items() if k != "version"},
    }
    properties = {k: v for k, v in properties.items() if v is not None}
    item_assets = {}
    for key, (path, title, roles) in assets.items():
        asset: dict[str, Any] = {
            "href": os.path.relpath(path, output.parent), "title": title, "roles": roles,
        }  # fmt: skip
        if path.suffix.lower() in (".tif", ".tiff"):
            asset["type"] = "image/tiff; application=geotiff"
        elif path.suffix.lower() == ".png":
            asset["type"] = "image/png"
        item_assets[key] = asset
    links = [
        {"rel": "derived_from", "href": str(Path(p).resolve()), "title": f"input raster {Path(p).name}"}
        for p in inputs
    ]
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": EXTENSIONS,
        "id": output.stem,
        "geometry": geometry,
        **({"bbox": bbox} if bbox is not None else {}),
        "properties": properties,
        "links": links,
        "assets": item_assets,
    }


def write_item(path: Path, item: Mapping[str, Any]) -> Path:
    """Write the Item atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(item, indent=2) + "\n")
    os.replace(tmp, path)
    return path
