"""Every model: default run to success, output kind, and downloaded images of the right size and
format (size rules from the fixtures: tables for FLUX.1, megapixel rules for the others)."""

from __future__ import annotations

import base64
import io
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from PIL import Image
from starlette.testclient import TestClient

from mock_server import Settings
from mock_server.clock import ManualClock
from tests.conftest import MODELS

FIXTURES = Path(Settings().fixtures_dir) / "models" / "black-forest-labs"
PIL_FORMATS = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
LIST_MODELS = {"flux-schnell", "flux-dev"}

DEFAULT_SIZE = dict.fromkeys(MODELS, (1024, 1024)) | {"flux-1.1-pro-ultra": (2048, 2048)}

# One non-default aspect ratio per model. FLUX.1 schnell/dev/pro/1.1-pro use cog-flux's table;
# the rest compute sqrt(MP * 1024^2 * r) rounded to the model's multiple (16, or 32 for kontext
# and ultra) and clamped.
WIDE = {
    "flux-schnell": ("16:9", (1344, 768)),
    "flux-dev": ("16:9", (1344, 768)),
    "flux-pro": ("16:9", (1344, 768)),
    "flux-1.1-pro": ("16:9", (1344, 768)),
    "flux-1.1-pro-ultra": ("16:9", (2720, 1536)),
    "flux-kontext-pro": ("16:9", (1376, 768)),
    "flux-kontext-max": ("9:16", (768, 1376)),
    "flux-2-pro": ("16:9", (1360, 768)),
    "flux-2-max": ("3:2", (1248, 832)),
    "flux-2-dev": ("16:9", (1360, 768)),
    "flux-2-flex": ("4:3", (1184, 880)),
}


@cache
def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))
    return data


def default_format(name: str) -> str:
    fmt: str = fixture(name)["input_schema"]["properties"]["output_format"]["default"]
    return fmt


def run_time(name: str) -> float:
    timing = fixture(name)["timing"]
    return float(timing["setup"]) + float(timing["predict"])


def run(client: TestClient, clock: ManualClock, name: str, **inp: Any) -> dict[str, Any]:
    """Create, check it is not done just before its time, then advance past it: succeeded."""
    r = client.post(
        f"/v1/models/black-forest-labs/{name}/predictions",
        json={"input": {"prompt": f"a lighthouse by {name}", **inp}},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "starting"
    url = f"/v1/predictions/{created['id']}"
    clock.advance(run_time(name) - 0.05)
    assert client.get(url).json()["status"] == "processing"
    clock.advance(0.1)
    done: dict[str, Any] = client.get(url).json()
    assert done["status"] == "succeeded", done
    return done


def outputs(done: dict[str, Any], name: str) -> list[str]:
    if name in LIST_MODELS:
        assert isinstance(done["output"], list)
        return list(done["output"])
    assert isinstance(done["output"], str)
    return [done["output"]]


def download(client: TestClient, url: str) -> Image.Image:
    r = client.get(urlsplit(url).path)
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def check_images(
    client: TestClient, done: dict[str, Any], name: str, size: tuple[int, int], fmt: str
) -> None:
    urls = outputs(done, name)
    assert urls
    for url in urls:
        assert url.endswith(f".{fmt}")
        img = download(client, url)
        assert img.size == size
        assert img.format == PIL_FORMATS[fmt]
    assert done["metrics"]["image_count"] == len(urls)


def data_uri(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_fixtures_cover_models() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == sorted(MODELS)
    assert set(WIDE) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_default_run(client: TestClient, clock: ManualClock, name: str) -> None:
    done = run(client, clock, name)
    check_images(client, done, name, DEFAULT_SIZE[name], default_format(name))
    assert done["metrics"]["predict_time"] == pytest.approx(fixture(name)["timing"]["predict"])
    assert done["metrics"]["total_time"] == pytest.approx(run_time(name))


@pytest.mark.parametrize("name", MODELS)
def test_non_default_aspect_ratio(client: TestClient, clock: ManualClock, name: str) -> None:
    aspect, size = WIDE[name]
    enum = fixture(name)["input_schema"]["properties"]["aspect_ratio"]["enum"]
    assert aspect in enum
    done = run(client, clock, name, aspect_ratio=aspect)
    check_images(client, done, name, size, default_format(name))


@pytest.mark.parametrize(
    ("aspect", "size"), [("16:9", (672, 384)), ("1:1", (512, 512)), ("9:21", (320, 768))]
)
def test_schnell_quarter_megapixel(
    client: TestClient, clock: ManualClock, aspect: str, size: tuple[int, int]
) -> None:
    done = run(client, clock, "flux-schnell", megapixels="0.25", aspect_ratio=aspect)
    check_images(client, done, "flux-schnell", size, "webp")


@pytest.mark.parametrize(
    ("name", "width", "height", "size"),
    [
        ("flux-pro", 1000, 700, (992, 704)),
        ("flux-1.1-pro", 1010, 700, (1008, 704)),
        ("flux-2-pro", 1000, 700, (992, 704)),
        ("flux-2-max", 1010, 700, (1008, 704)),
    ],
)
def test_custom_size(
    client: TestClient,
    clock: ManualClock,
    name: str,
    width: int,
    height: int,
    size: tuple[int, int],
) -> None:
    done = run(client, clock, name, aspect_ratio="custom", width=width, height=height)
    check_images(client, done, name, size, "webp")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("flux-schnell", "png"),
        ("flux-schnell", "jpg"),
        ("flux-dev", "png"),
        ("flux-pro", "jpg"),
        ("flux-1.1-pro-ultra", "png"),
        ("flux-kontext-pro", "jpg"),
        ("flux-2-flex", "png"),
    ],
)
def test_output_format(client: TestClient, clock: ManualClock, name: str, fmt: str) -> None:
    done = run(client, clock, name, output_format=fmt)
    check_images(client, done, name, DEFAULT_SIZE[name], fmt)


def test_schnell_num_outputs(client: TestClient, clock: ManualClock) -> None:
    done = run(client, clock, "flux-schnell", num_outputs=4, output_format="png")
    assert len(done["output"]) == 4
    check_images(client, done, "flux-schnell", (1024, 1024), "png")
    images = {download(client, url).tobytes() for url in done["output"]}
    assert len(images) == 4


@pytest.mark.parametrize("name", ["flux-kontext-pro", "flux-kontext-max"])
def test_kontext_matches_input_image(client: TestClient, clock: ManualClock, name: str) -> None:
    # 2:1 at 1 MP: sqrt(2 * 1024^2) = 1448 -> 1440 (multiple of 32); 724 -> 736.
    done = run(client, clock, name, input_image=data_uri(800, 400))
    check_images(client, done, name, (1440, 736), "png")


def test_flux2_resolution(client: TestClient, clock: ManualClock) -> None:
    # 0.5 MP square: sqrt(0.5 * 1024^2) = 724 -> 720 (multiple of 16).
    done = run(client, clock, "flux-2-pro", resolution="0.5 MP")
    check_images(client, done, "flux-2-pro", (720, 720), "webp")
