"""Output width x height from a model's size rule and the effective input.

A table entry (cog-flux) or a custom width/height is used as given. Otherwise the ratio (a named
"W:H" or the measured match_input_image input) is clamped into the rule's range, the area comes
from `megapixels` (or the resolution input) capped at `max_megapixels`, both sides are scaled by
one factor into [min_side, max_side] so the ratio is kept, and each side is rounded to `multiple`
without leaving the side or area limits. With `input_size_field` (flux-dev's img2img `image`), a
measured input image gives its own size instead, as cog-flux does.

Input images are measured by the caller (inputs.py: data: URIs, uploaded files, this server's
outputs, fetched URLs); by default only data: URIs are, and an image of unknown size counts as 1:1.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

MEGAPIXEL = 1024 * 1024
MIN_MATCHED_MEGAPIXELS = 0.5  # resolution "match_input_image" never goes below FLUX.2's 0.5 MP
RATIO_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$"
_RATIO = re.compile(RATIO_PATTERN)
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
    max_megapixels: float | None = None  # hard area ceiling: width * height <= this * MEGAPIXEL
    min_ratio: float | None = None  # supported width / height range
    max_ratio: float | None = None
    input_size_field: str | None = None  # img2img: the output takes this input image's size,
    input_size_max: int = 1440  # scaled down to fit this square (cog-flux MAX_IMAGE_SIZE)


Measure = Callable[[object], tuple[int, int] | None]  # an input value -> its image's size


def parse_ratio(text: str) -> float | None:
    """Width / height of a "W:H" string; None when it is not one or either side is 0."""
    m = _RATIO.match(text)
    if m is None or not float(m.group(1)) or not float(m.group(2)):
        return None
    return float(m.group(1)) / float(m.group(2))


def _round(value: float, multiple: int) -> int:
    """The nearest multiple, halves rounding up (1000 -> 1008 for 16), never below one multiple."""
    return max(multiple, math.floor(value / multiple + 0.5) * multiple)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def first_image(value: object) -> object:
    """The image an input holds: itself, or the first item of a list (FLUX.2 `input_images`)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def data_uri_size(value: object) -> tuple[int, int] | None:
    """Width and height of an image given as a data: URI; None for anything else."""
    value = first_image(value)
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


def fit(rule: SizeRule, ratio: float, megapixels: float) -> tuple[int, int]:
    """Sides for `ratio` (width / height) at about `megapixels`, within every limit of `rule`."""
    low = max(rule.min_ratio or 0.0, rule.min_side / rule.max_side)
    high = min(rule.max_ratio or math.inf, rule.max_side / rule.min_side)
    ratio = min(high, max(low, ratio))
    if rule.max_megapixels is not None:
        megapixels = min(megapixels, rule.max_megapixels)
    width = math.sqrt(megapixels * MEGAPIXEL * ratio)
    height = width / ratio
    # One factor for both sides: shrink to max_side, or grow to min_side (the ratio range above
    # guarantees that doing one never breaks the other).
    scale = min(rule.max_side / max(width, height), max(1.0, rule.min_side / min(width, height)))
    width, height = width * scale, height * scale
    m = rule.multiple
    low_side = math.ceil(rule.min_side / m) * m  # the side limits as multiples of m
    high_side = rule.max_side // m * m
    w = _clamp(_round(width, m), low_side, high_side)
    h = _clamp(_round(height, m), low_side, high_side)
    if rule.max_megapixels is not None and w * h > rule.max_megapixels * MEGAPIXEL:
        w = _clamp(math.floor(width / m) * m, low_side, high_side)  # rounding down keeps the
        h = _clamp(math.floor(height / m) * m, low_side, high_side)  # area under the ceiling
    return w, h


def scaled_input_size(rule: SizeRule, size: tuple[int, int]) -> tuple[int, int]:
    """cog-flux img2img: the input's size scaled down (never up) to fit `input_size_max`
    square, each side then rounded (Python's round) to `multiple`, never below one multiple."""
    width, height = size
    scale = min(rule.input_size_max / width, rule.input_size_max / height, 1.0)
    if scale < 1:
        width, height = int(width * scale), int(height * scale)
    m = rule.multiple
    return max(m, round(width / m) * m), max(m, round(height / m) * m)


def output_size(
    rule: SizeRule, inp: dict[str, Any], measure: Measure = data_uri_size
) -> tuple[int, int]:
    """The size the model would produce for `inp` (defaults already applied); `measure` gives
    an input image's size, or None when it is unknown."""
    if rule.input_size_field and inp.get(rule.input_size_field):
        given = measure(inp[rule.input_size_field])
        if given:
            return scaled_input_size(rule, given)
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
    matched = measure(inp.get(rule.match_input_field)) if rule.match_input_field else None
    if aspect == "match_input_image":
        if matched:
            ratio = matched[0] / matched[1]
    else:
        ratio = parse_ratio(aspect) or 1.0
    if rule.resolution_field:
        resolution = str(inp.get(rule.resolution_field, ""))
        if m := _MP.match(resolution):
            megapixels = float(m.group(1))
        elif resolution == "match_input_image" and matched:
            megapixels = max(MIN_MATCHED_MEGAPIXELS, matched[0] * matched[1] / MEGAPIXEL)
    return fit(rule, ratio, megapixels)
