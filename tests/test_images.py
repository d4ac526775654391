"""Placeholder images: exact size and format, deterministic bytes, any prompt renders."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mock_server.images import prediction_lines, render


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(("fmt", "pil_format"), [("webp", "WEBP"), ("jpg", "JPEG"), ("png", "PNG")])
@pytest.mark.parametrize("size", [(1024, 1024), (1344, 768), (256, 1440), (33, 17)])
def test_size_and_format(fmt: str, pil_format: str, size: tuple[int, int]) -> None:
    data = render(*size, fmt, 80, lines=["black-forest-labs/flux-schnell", "a cat"], seed="s")
    img = open_image(data)
    assert img.size == size
    assert img.format == pil_format


def test_same_parameters_same_bytes_and_seed_changes_them() -> None:
    lines = prediction_lines("a cat", "black-forest-labs/flux-dev", 512, 512, 0)
    a = render(512, 512, "webp", 80, lines=lines, seed="id/0")
    b = render(512, 512, "webp", 80, lines=lines, seed="id/0")
    c = render(512, 512, "webp", 80, lines=lines, seed="id/1")
    assert a == b
    assert a != c


def test_quality_changes_jpeg_size() -> None:
    lines = ["x" * 50] * 3
    low = render(512, 512, "jpg", 10, lines=lines, seed="s")
    high = render(512, 512, "jpg", 95, lines=lines, seed="s")
    assert len(low) < len(high)


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("a cat 🐱 on a 🚀", id="emoji"),
        pytest.param("שלום עולם مرحبا بالعالم", id="right-to-left"),
        pytest.param("Zalgo: z̷̢a̶͓l̸g̵o̴ e\u0301", id="combining"),
        pytest.param("long " * 2000, id="10000-chars"),
        pytest.param("", id="empty"),
        pytest.param("\x00\x01 control\ncharacters\t", id="control"),
    ],
)
def test_any_prompt_renders(prompt: str) -> None:
    lines = prediction_lines(prompt, "black-forest-labs/flux-schnell", 640, 480, 3)
    img = open_image(render(640, 480, "png", 80, lines=lines, seed="s"))
    assert img.size == (640, 480)


def test_image_shows_text_over_the_background() -> None:
    plain = open_image(render(400, 400, "png", 80, lines=[], seed="s"))
    text = open_image(render(400, 400, "png", 80, lines=["a cat"] * 3, seed="s"))
    assert plain.tobytes() != text.tobytes()
    colors = text.getcolors(maxcolors=400 * 400)
    assert colors is not None
    assert len(colors) > 20  # a gradient and anti-aliased text, not a flat fill


@pytest.mark.parametrize("size", [(1024, 1024), (1344, 768), (64, 2048), (333, 777)])
def test_the_gradient_is_the_strip_stretched_over_the_whole_image(size: tuple[int, int]) -> None:
    """The background is drawn the cheap way (one row, repeated); its pixels are those of the
    plain definition, so images do not change between versions."""
    from mock_server.images import _colors, _gradient

    seed = f"seed{size}"
    (r0, g0, b0), (r1, g1, b1) = _colors(seed)
    strip = Image.new("RGB", (256, 2))
    ramp = [
        (r0 + (r1 - r0) * x // 255, g0 + (g1 - g0) * x // 255, b0 + (b1 - b0) * x // 255)
        for x in range(256)
    ]
    strip.putdata(ramp * 2)
    plain = strip.resize(size, Image.Resampling.BILINEAR)
    assert _gradient(*size, seed).tobytes() == plain.tobytes()
