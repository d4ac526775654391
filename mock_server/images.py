"""Placeholder images: pure (parameters in, encoded bytes out), deterministic, drawn with Pillow."""

from __future__ import annotations

import hashlib
import io
import textwrap
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

FORMATS = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
MEDIA_TYPES = {"webp": "image/webp", "jpg": "image/jpeg", "png": "image/png"}
MAX_PROMPT_CHARS = 400


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colors(seed: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    d = hashlib.blake2b(seed.encode(), digest_size=6).digest()
    return (d[0] // 2, d[1] // 2, d[2] // 2 + 64), (d[3] // 2 + 96, d[4] // 2 + 64, d[5] // 2 + 96)


def _gradient(width: int, height: int, seed: str) -> Image.Image:
    """A left-to-right gradient: a 256-pixel strip stretched to one row, then that row repeated
    (no per-pixel Python; a quarter of the cost of stretching the strip to the whole image, with
    the same pixels)."""
    (r0, g0, b0), (r1, g1, b1) = _colors(seed)
    strip = Image.new("RGB", (256, 1))
    strip.putdata(
        [
            (r0 + (r1 - r0) * x // 255, g0 + (g1 - g0) * x // 255, b0 + (b1 - b0) * x // 255)
            for x in range(256)
        ]
    )
    row = strip.resize((width, 1), Image.Resampling.BILINEAR)
    return row.resize((width, height), Image.Resampling.NEAREST)


def render(
    width: int, height: int, fmt: str, quality: int, *, lines: list[str], seed: str
) -> bytes:
    """An image of exactly width x height in `fmt` (webp/jpg/png) showing `lines` of text."""
    img = _gradient(width, height, seed)
    draw = ImageDraw.Draw(img)
    short = min(width, height)
    title_size = max(10, short // 8)
    body_size = max(8, short // 28)
    margin = max(4, short // 24)
    draw.text((margin, margin), "MOCK", font=_font(title_size), fill=(255, 255, 255))
    y = margin + title_size + margin // 2
    chars = max(8, (width - 2 * margin) * 2 // body_size)
    for line in lines:
        for part in textwrap.wrap(line, chars, max_lines=6, placeholder=" …") or [""]:
            if y + body_size > height - margin:
                break
            draw.text((margin, y), part, font=_font(body_size), fill=(240, 240, 240))
            y += body_size + body_size // 3
    out = io.BytesIO()
    pil_format = FORMATS[fmt]
    if pil_format == "WEBP":
        img.save(out, "WEBP", quality=max(1, quality), method=2)
    elif pil_format == "JPEG":
        img.save(out, "JPEG", quality=max(1, min(95, quality)))
    else:
        img.save(out, "PNG", compress_level=1)
    return out.getvalue()


def warm() -> None:
    """Load what a first render would otherwise load on a client's time: each format's encoder
    (Pillow's plugins) and the fonts of the most common output sizes."""
    for fmt in FORMATS:
        render(64, 64, fmt, 80, lines=["warm"], seed="warm")
    for short in (512, 768, 1024, 1440):
        _font(max(10, short // 8))
        _font(max(8, short // 28))


def prediction_lines(prompt: str, model: str, width: int, height: int, index: int) -> list[str]:
    prompt = prompt if len(prompt) <= MAX_PROMPT_CHARS else prompt[:MAX_PROMPT_CHARS] + "…"
    return [model, f"{width}x{height}  output {index}", prompt]
