"""Benchmark reports: ``metrics.json``, a Markdown table and a PNG strip of quick-look crops.

Pillow only (no matplotlib): panels are true-colour quick-looks sharing one contrast stretch,
labelled with Pillow's default font.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from satsr.evaluation.quicklook import DEFAULT_STRETCH, RGBN_RGB_CHANNELS, stretch_limits, to_quicklook_rgb

#: Panel names with a fixed place in the crop strip: LR first, HR last.
LR_LABEL = "LR"
HR_LABEL = "HR"
#: Panels smaller than this (pixels) are enlarged by an integer factor (nearest) for legibility.
MIN_PANEL_PX = 128
#: Height of the label band above each panel, and the gap between panels (pixels).
LABEL_BAND_PX = 18
PANEL_GAP_PX = 4
_LABEL_MARGIN_PX = 3
_BACKGROUND = (255, 255, 255)
_TEXT_COLOUR = (0, 0, 0)
#: Significant digits of the Markdown table.
TABLE_DIGITS = 4

CROPS_FILE = "crops.png"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


def _ordered_panels(crops: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """LR first, HR last, the others (bicubic, SR methods) in the given order."""
    middle = [(name, crop) for name, crop in crops.items() if name not in (LR_LABEL, HR_LABEL)]
    first = [(LR_LABEL, crops[LR_LABEL])] if LR_LABEL in crops else []
    last = [(HR_LABEL, crops[HR_LABEL])] if HR_LABEL in crops else []
    return first + middle + last


def _nearest_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, 3) uint8 image (LR pixels shown as blocks)."""
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def render_crops(
    crops: Mapping[str, np.ndarray],
    rgb: tuple[int, int, int] = RGBN_RGB_CHANNELS,
    stretch: tuple[float, float] = DEFAULT_STRETCH,
) -> Image.Image:
    """A labelled side-by-side strip of (C, H, W) reflectance crops.

    Every panel is brought to the size of the largest crop (nearest neighbour, so the LR shows
    its pixels) and stretched with the percentiles of the HR crop (of the first crop without HR).
    """
    if not crops:
        raise ValueError("crops is empty")
    panels = _ordered_panels(crops)
    for name, crop in panels:
        if crop.ndim != 3:
            raise ValueError(f"crop {name!r} must be (C, H, W), got shape {crop.shape}")
    reference = crops.get(HR_LABEL, panels[0][1])
    limits = stretch_limits(reference, rgb, stretch)
    height = max(crop.shape[1] for _, crop in panels)
    width = max(crop.shape[2] for _, crop in panels)
    zoom = max(1, math.ceil(MIN_PANEL_PX / min(height, width)))
    height, width = height * zoom, width * zoom
    font = ImageFont.load_default()
    labels = [_wrap(name, font, width - 2 * _LABEL_MARGIN_PX) for name, _ in panels]
    line_px = LABEL_BAND_PX - 2 * _LABEL_MARGIN_PX
    band = max(LABEL_BAND_PX, max(len(lines) for lines in labels) * line_px + 2 * _LABEL_MARGIN_PX)
    canvas = Image.new(
        "RGB", (len(panels) * width + (len(panels) - 1) * PANEL_GAP_PX, height + band), _BACKGROUND
    )
    draw = ImageDraw.Draw(canvas)
    for index, ((_, crop), lines) in enumerate(zip(panels, labels, strict=True)):
        quicklook = _nearest_resize(to_quicklook_rgb(crop, rgb, stretch, limits), height, width)
        left = index * (width + PANEL_GAP_PX)
        canvas.paste(Image.fromarray(quicklook), (left, band))
        for k, line in enumerate(lines):
            draw.text(
                (left + _LABEL_MARGIN_PX, _LABEL_MARGIN_PX + k * line_px), line, fill=_TEXT_COLOUR, font=font
            )
    return canvas


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: float) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels (breaking at spaces where possible)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}".strip()
        if current and font.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines or [""]


def _json_value(value: float) -> float | None:
    """JSON has no inf/NaN: non-finite values are written as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _format_value(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{float(value):.{TABLE_DIGITS}g}"


def markdown_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """One row per method, one column per metric (in first-seen order); missing values show '–'."""
    metrics: list[str] = []
    for values in results.values():
        metrics += [name for name in values if name not in metrics]
    lines = [
        "| method | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for method, values in results.items():
        cells = [_format_value(values.get(name)) for name in metrics]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    results: Mapping[str, Mapping[str, float]],
    crops: Mapping[str, np.ndarray] | None,
    out_dir: Path,
    title: str,
) -> Path:
    """Write ``metrics.json``, ``report.md`` and (with ``crops``) ``crops.png``; return the report path.

    ``results`` maps method names to {metric name: value}. ``crops`` maps panel labels ("LR",
    "bicubic", method names, "HR") to (C, H, W) reflectance arrays in satsr band order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    serialisable = {
        method: {name: _json_value(value) for name, value in values.items()}
        for method, values in results.items()
    }
    (out_dir / METRICS_FILE).write_text(
        json.dumps({"title": title, "results": serialisable}, indent=2, allow_nan=False) + "\n"
    )
    sections = [f"# {title}", "", markdown_table(results), ""]
    if crops:
        render_crops(crops).save(out_dir / CROPS_FILE)
        labels = ", ".join(name for name, _ in _ordered_panels(crops))
        low, high = DEFAULT_STRETCH
        sections += [
            f"Quick-look crops ({labels}), RGB with a shared {low:g}-{high:g} % stretch:",
            "",
            f"![crops]({CROPS_FILE})",
            "",
        ]
    report_path = out_dir / REPORT_FILE
    report_path.write_text("\n".join(sections))
    return report_path
