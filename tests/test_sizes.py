"""Output sizes per model rule, checked against the real models' tables."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from mock_server.config import Settings
from mock_server.fixtures import ModelFixture, load_fixtures
from mock_server.sizes import output_size


@pytest.fixture(scope="module")
def models() -> dict[str, ModelFixture]:
    return load_fixtures(Settings().fixtures_dir)


def size(models: dict[str, ModelFixture], name: str, **inp: object) -> tuple[int, int]:
    fixture = models[f"black-forest-labs/{name}"]
    return output_size(fixture.size, fixture.effective_input({"prompt": "x", **inp}))


def data_uri(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [
        ("1:1", (1024, 1024)),
        ("16:9", (1344, 768)),
        ("21:9", (1536, 640)),
        ("3:2", (1216, 832)),
        ("2:3", (832, 1216)),
        ("4:5", (896, 1088)),
        ("5:4", (1088, 896)),
        ("3:4", (896, 1152)),
        ("4:3", (1152, 896)),
        ("9:16", (768, 1344)),
        ("9:21", (640, 1536)),
    ],
)
def test_cog_flux_table(
    models: dict[str, ModelFixture], aspect: str, expected: tuple[int, int]
) -> None:
    assert size(models, "flux-schnell", aspect_ratio=aspect) == expected
    assert size(models, "flux-dev", aspect_ratio=aspect) == expected
    half = (expected[0] // 2, expected[1] // 2)
    assert size(models, "flux-schnell", aspect_ratio=aspect, megapixels="0.25") == half


def test_defaults(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-schnell") == (1024, 1024)
    assert size(models, "flux-1.1-pro-ultra") == (2048, 2048)
    assert size(models, "flux-kontext-pro") == (1024, 1024)  # match_input_image, no image
    assert size(models, "flux-2-pro") == (1024, 1024)


def test_custom_sizes_round_to_the_models_multiple(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-pro", aspect_ratio="custom", width=1000, height=700) == (992, 704)
    assert size(models, "flux-1.1-pro", aspect_ratio="custom", width=1000, height=700) == (
        1008,
        704,
    )
    assert size(models, "flux-2-max", aspect_ratio="custom", width=2040, height=260) == (2048, 256)


def test_flux2_resolution(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-2-pro", resolution="4 MP") == (2048, 2048)
    assert size(models, "flux-2-pro", resolution="0.5 MP") == (720, 720)
    w, h = size(models, "flux-2-pro", aspect_ratio="16:9", resolution="2 MP")
    assert (w % 16, h % 16) == (0, 0)
    assert abs(w / h - 16 / 9) < 0.02


def test_match_input_image_reads_a_data_uri(models: dict[str, ModelFixture]) -> None:
    w, h = size(models, "flux-kontext-pro", input_image=data_uri(300, 600))
    assert abs(w / h - 0.5) < 0.05
    w, h = size(
        models, "flux-2-pro", aspect_ratio="match_input_image", input_images=[data_uri(800, 400)]
    )
    assert abs(w / h - 2.0) < 0.05


def test_bundled_fixture_dir_exists() -> None:
    assert (Settings().fixtures_dir / "models" / "black-forest-labs").is_dir()
    assert Path(Settings().spec_path).is_file()
