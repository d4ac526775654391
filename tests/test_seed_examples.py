"""The seed document's seven request examples, replayed against the in-process app."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from PIL import Image
from starlette.testclient import TestClient

from mock_server.clock import ManualClock

# A copy of shared/reference/seed-openapi.yaml (CometAPI's document), kept with the tests so the
# suite runs from any checkout.
SEED_PATH = Path(__file__).resolve().parent / "data" / "seed-openapi.yaml"
SEED_OPERATION = ("/replicate/v1/models/{models}/predictions", "post")
PIL_FORMATS = {"jpg": "JPEG", "webp": "WEBP", "png": "PNG"}


def load_seed() -> dict[str, Any]:
    if not SEED_PATH.is_file():
        pytest.fail(
            f"seed document not found at {SEED_PATH}: copy shared/reference/seed-openapi.yaml there"
        )
    document = yaml.safe_load(SEED_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{SEED_PATH} is not a YAML mapping"
    return document


def seed_operation() -> dict[str, Any]:
    path, method = SEED_OPERATION
    operation: dict[str, Any] = load_seed()["paths"][path][method]
    return operation


def seed_examples() -> list[tuple[str, dict[str, Any]]]:
    examples = seed_operation()["requestBody"]["content"]["application/json"]["examples"]
    return [(example["summary"], example["value"]) for example in examples.values()]


def seed_response_schema() -> dict[str, Any]:
    schema: dict[str, Any] = seed_operation()["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    return schema


def example_params() -> list[Any]:
    """Collected lazily so a missing seed fails the tests (with a message) instead of erroring."""
    try:
        examples = seed_examples()
    except (pytest.fail.Exception, OSError, KeyError, TypeError, yaml.YAMLError):
        return [pytest.param(None, None, id="seed-missing")]
    return [pytest.param(ref, body, id=ref.split("/")[-1]) for ref, body in examples]


def test_seed_has_seven_request_examples() -> None:
    examples = seed_examples()
    assert len(examples) == 7
    assert all(ref.startswith("black-forest-labs/flux-") for ref, _ in examples)


def output_urls(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output]
    assert isinstance(output, list), output
    assert output, "a succeeded prediction has at least one output"
    assert all(isinstance(u, str) for u in output)
    return list(output)


@pytest.mark.parametrize(("ref", "body"), example_params())
def test_seed_example_creates_and_succeeds(
    client: TestClient, clock: ManualClock, ref: str | None, body: dict[str, Any] | None
) -> None:
    if ref is None or body is None:
        load_seed()  # fails with the explanatory message
        pytest.fail("seed examples could not be read")
    schema = seed_response_schema()

    created = client.post(f"/replicate/v1/models/{ref}/predictions", json=body)
    assert created.status_code == 200, created.text
    data = created.json()
    assert data["status"] == "starting"
    missing = [name for name in schema["required"] if name not in data]
    assert not missing, f"create response lacks fields the seed requires: {missing}"
    url_required = schema["properties"]["urls"]["required"]
    missing_urls = [name for name in url_required if name not in data["urls"]]
    assert not missing_urls, f"urls lacks fields the seed requires: {missing_urls}"
    assert all(isinstance(data["urls"][name], str) for name in url_required)
    assert data["version"] == "hidden"
    assert data["model"] == ref
    assert data["input"] == body["input"]  # echoed exactly, unknown keys kept
    assert data["output"] is None
    assert data["error"] is None
    assert data["data_removed"] is False

    clock.advance(60)
    got = client.get(f"/replicate/v1/predictions/{data['id']}")
    assert got.status_code == 200, got.text
    done = got.json()
    assert done["status"] == "succeeded"
    assert done["input"] == body["input"]

    fmt = body["input"].get("output_format", "webp")
    for url in output_urls(done["output"]):
        parts = urlsplit(url)
        assert parts.path.endswith(f".{fmt}"), url
        image = client.get(parts.path)
        assert image.status_code == 200, url
        with Image.open(io.BytesIO(image.content)) as img:
            assert img.format == PIL_FORMATS[fmt]
            width, height = img.size
        ratio = body["input"].get("aspect_ratio")
        if ratio:
            w, h = (int(n) for n in ratio.split(":"))
            assert width / height == pytest.approx(w / h, rel=0.05), (ratio, width, height)
