"""Output width x height from a model's size rule and the effective input."""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

MEGAPIXEL = 1024 * 1024
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_MP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*MP\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CustomSize:
    multiple: int
    min: int
    max: int
    default: tuple[int, int]


@dataclass(frozen=True, slots=True)
class SizeRule:
    aspect_field: str = "aspect_ratio"
    table: dict[str, tuple[int, int]] | None = None
    halve_field: str | None = None
    megapixels: float = 1.0
    resolution_field: str | None = None
    multiple: int = 16
    min_side: int = 256
    max_side: int = 2048
    custom: CustomSize | None = None
    match_input_field: str | None = None


def _round(value: float, multiple: int) -> int:
    """The nearest multiple, halves rounding up (1000 -> 1008 for 16), never below one multiple."""
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def data_uri_size(value: object) -> tuple[int, int] | None:
    """Width and height of an image given as a data: URI; None for anything else."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or not value.startswith("data:") or "," not in value:
        return None
    header, payload = value.split(",", 1)
    if not header.endswith(";base64"):
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=False))) as img:
            return img.size
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return None


def output_size(rule: SizeRule, inp: dict[str, Any]) -> tuple[int, int]:
    """The size the model would produce for `inp` (defaults already applied)."""
    aspect = str(inp.get(rule.aspect_field, "1:1"))
    if aspect == "custom" and rule.custom is not None:
        c = rule.custom
        w = inp.get("width") or c.default[0]
        h = inp.get("height") or c.default[1]
        return (
            _clamp(_round(w, c.multiple), c.min, c.max),
            _clamp(_round(h, c.multiple), c.min, c.max),
        )
    if rule.table is not None and aspect in rule.table:
        w, h = rule.table[aspect]
        if rule.halve_field and str(inp.get(rule.halve_field)) == "0.25":
            return w // 2, h // 2
        return w, h
    megapixels = rule.megapixels
    ratio = 1.0
    matched = data_uri_size(inp.get(rule.match_input_field)) if rule.match_input_field else None
    if aspect == "match_input_image":
        if matched:
            ratio = matched[0] / matched[1]
    elif m := _RATIO.match(aspect):
        ratio = float(m.group(1)) / float(m.group(2)) if float(m.group(2)) else 1.0
    if rule.resolution_field:
        resolution = str(inp.get(rule.resolution_field, ""))
        if m := _MP.match(resolution):
            megapixels = float(m.group(1))
        elif resolution == "match_input_image" and matched:
            megapixels = min(4.0, max(0.5, matched[0] * matched[1] / MEGAPIXEL))
    width = math.sqrt(megapixels * MEGAPIXEL * ratio)
    height = width / ratio
    return (
        _clamp(_round(width, rule.multiple), rule.min_side, rule.max_side),
        _clamp(_round(height, rule.multiple), rule.min_side, rule.max_side),
    )
