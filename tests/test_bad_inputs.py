"""The bad-input catalog, generated from the fixtures: every parameter of every model with a wrong
type, out of range and off its enum; plus nesting, traversal, methods and hard prompts."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server.clock import ManualClock
from mock_server.config import Settings
from mock_server.fixtures import load_fixtures
from tests.conftest import http_scope

MODELS = load_fixtures(Settings().fixtures_dir)
WRONG_TYPE = {"integer": "seven", "number": "seven", "boolean": "yes", "string": 7, "array": "x"}


def bad_values(schema: dict[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """(case, value, invalid_fields type) for one property's schema."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind in WRONG_TYPE:
        yield "wrong-type", WRONG_TYPE[kind], "invalid_type"
    if "minimum" in schema:
        yield "below-minimum", schema["minimum"] - 1, "number_gte"
    if "maximum" in schema:
        yield "above-maximum", schema["maximum"] + 1, "number_lte"
    if "enum" in schema:
        yield "off-enum", "not-an-option", "enum"
    if "maxItems" in schema:
        yield (
            "too-many-items",
            ["https://example.com/a.png"] * (schema["maxItems"] + 1),
            ("array_max_items"),
        )


CASES = [
    pytest.param(ref, name, value, code, id=f"{ref.split('/')[1]}-{name}-{case}")
    for ref, fixture in sorted(MODELS.items())
    for name, prop in fixture.input_schema["properties"].items()
    for case, value, code in bad_values(prop)
]


def stored(client: TestClient) -> list[Any]:
    results: list[Any] = client.get("/v1/predictions").json()["results"]
    return results


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(("ref", "name", "value", "code"), CASES)
def test_each_parameter_of_each_model(
    client: TestClient, ref: str, name: str, value: Any, code: str
) -> None:
    response = client.post(
        f"/v1/models/{ref}/predictions", json={"input": {"prompt": "a cat", name: value}}
    )
    body = assert_problem(response, 422)
    # A wrong type can break `enum` too; Replicate lists every problem, each naming the field.
    assert {f["field"] for f in body["invalid_fields"]} == {f"input.{name}"}
    assert code in {f["type"] for f in body["invalid_fields"]}
    assert f"- input.{name}: " in body["detail"]
    assert stored(client) == []


def test_every_model_and_parameter_is_covered() -> None:
    covered = {(p.values[0], p.values[1]) for p in CASES}
    for ref, fixture in MODELS.items():
        for name in fixture.input_schema["properties"]:
            assert (ref, name) in covered, f"{ref} {name} has no bad-value case"


@pytest.mark.parametrize("depth", [65, 300, 2000])
def test_deeply_nested_json_is_refused(client: TestClient, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    raw = f'{{"input": {{"prompt": "x", "deep": {deep}}}}}'.encode()
    response = client.post(
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert "nested" in assert_problem(response, 400)["detail"] or depth > 1000
    assert stored(client) == []


def test_moderate_nesting_inside_input_is_kept(client: TestClient) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"k": nested}
    created = client.post(
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "x", "extra": nested}},
    )
    assert created.status_code == 201
    assert created.json()["input"]["extra"] == nested


def raw_get(app: Starlette, raw_path: bytes) -> tuple[int, bytes]:
    """One request with the path exactly as given (HTTP clients normalise `..` away)."""
    scope = http_scope("GET", raw_path)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


@pytest.mark.parametrize(
    "path",
    [
        b"/delivery/../openapi.yaml",
        b"/delivery/../../etc/passwd",
        b"/delivery/0123456789abcdefghjkmnpqrs/../../etc/passwd",
        b"/delivery/%2e%2e/%2e%2e/etc/passwd",
        b"/delivery/0123456789abcdefghjkmnpqrs/..%2f..%2fetc%2fpasswd",
        b"/delivery/0123456789abcdefghjkmnpqrs/out-0.webp/../../x",
    ],
)
def test_traversal_in_file_routes_is_404(app: Starlette, path: bytes) -> None:
    status, body = raw_get(app, path)
    assert status == 404
    assert orjson.loads(body)["status"] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/predictions?page=2",
        "/replicate/v1/predictions?limit=1&sort=asc",
        "/v1/predictions/0123456789abcdefghjkmnpqrs?include=logs",
        "/v1/models/black-forest-labs/flux-dev?x=1",
        "/openapi.json?v=2",
    ],
)
def test_unknown_query_parameter_is_ignored(client: TestClient, path: str) -> None:
    """As the real API does: only declared parameters are read (and checked)."""
    response = client.get(path)
    assert response.status_code in (200, 404), response.text  # 404: no such prediction
    assert response.status_code == 200 or "could not be found" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/models/black-forest-labs/flux-dev/predictions?foo=bar", 201),
        ("/replicate/v1/models/black-forest-labs/flux-dev/predictions?foo=bar&x", 200),
    ],
    ids=["v1", "replicate-v1"],
)
def test_a_create_with_an_unknown_query_parameter_is_created(
    client: TestClient, path: str, status: int
) -> None:
    """Ignored as the real API ignores them (and as the reads above do)."""
    response = client.post(path, json={"input": {"prompt": "a cat"}})
    assert response.status_code == status, response.text
    assert response.json()["status"] == "starting"
    assert [p["id"] for p in stored(client)] == [response.json()["id"]]


def test_known_query_parameter_with_a_bad_value_is_still_400(client: TestClient) -> None:
    body = assert_problem(client.get("/v1/predictions?page=2&cursor=zz"), 400)
    assert "cursor" in body["detail"]


def test_admin_refuses_unknown_query_parameters(client: TestClient) -> None:
    """The admin API is the server's own: a misspelt filter is an error, not ignored."""
    body = assert_problem(client.get("/__admin/requests?stauts=400"), 400)
    assert "stauts" in body["detail"]


@pytest.mark.parametrize("cursor", ["%%%", "x", "b", "b-1", "c12", "b" + "9" * 40, "a1x"])
def test_bad_cursor_is_400(client: TestClient, cursor: str) -> None:
    assert_problem(client.get("/v1/predictions", params={"cursor": cursor}), 400)


def test_head_on_get_routes_and_not_on_post_routes(client: TestClient) -> None:
    response = client.head("/v1/predictions")
    assert response.status_code == 200
    assert response.content == b""
    refused = client.head("/v1/models/black-forest-labs/flux-dev/predictions")
    assert refused.status_code == 405
    assert "POST" in refused.headers["allow"]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/predictions", "GET, HEAD, POST"),
        ("/replicate/v1/models/black-forest-labs/flux-dev/predictions", "POST"),
        ("/v1/predictions/0123456789abcdefghjkmnpqrs", "GET, HEAD"),
    ],
)
def test_options_is_405_with_allow(client: TestClient, path: str, allow: str) -> None:
    response = client.options(path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    "prompt",
    [
        pytest.param("a cat 🐱 riding a 🚀 through 🌌", id="emoji"),
        pytest.param("חתול על ירח, قطة على القمر", id="right-to-left"),
        pytest.param(
            "c\u0327a\u0301t\u0308 Z\u0336\u0321a\u0337l\u0338g\u0335o\u0334", id="combining"
        ),
        pytest.param("a very long prompt " * 527, id="10000-characters"),
    ],
)
def test_hard_prompts_are_accepted_and_render(
    client: TestClient, clock: ManualClock, prompt: str
) -> None:
    created = client.post(
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": prompt, "megapixels": "0.25"}},
    )
    assert created.status_code == 201
    assert created.json()["input"]["prompt"] == prompt
    clock.advance(60)
    done = client.get(created.json()["urls"]["get"]).json()
    assert done["status"] == "succeeded"
    image = client.get(done["output"][0])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (512, 512)
