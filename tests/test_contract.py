"""The test-only response checker (tests/contract.py) and its hook on the `client` fixture."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.contract import ResponseChecker, default_checker

JSON = {"content-type": "application/json"}
PROBLEM = {"content-type": "application/problem+json"}
SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"
VALID_ID = "0123456789abcdefghjkmnpqrs"


@pytest.fixture
def checker() -> ResponseChecker:
    return default_checker()


@pytest.fixture
def prediction(client: TestClient) -> dict[str, Any]:
    """A prediction body exactly as the server sends it."""
    r = client.post(SCHNELL, json={"input": {"prompt": "a cat"}})
    assert r.status_code == 201
    body: dict[str, Any] = r.json()
    return body


def problem(status: int, **extra: Any) -> bytes:
    return orjson.dumps({"title": "t", "detail": "d", "status": status, **extra})


def test_documented_prediction_passes(checker: ResponseChecker, prediction: dict[str, Any]) -> None:
    path = f"/v1/predictions/{prediction['id']}"
    body = orjson.dumps(prediction)
    checker.check("GET", path, 200, JSON, body)
    checker.check("GET", path, 200, {"Content-Type": "application/json; charset=utf-8"}, body)


def test_extra_field_in_prediction_fails(
    checker: ResponseChecker, prediction: dict[str, Any]
) -> None:
    body = orjson.dumps({**prediction, "gpu": "a100"})
    with pytest.raises(AssertionError, match=r"'gpu' was unexpected"):
        checker.check("GET", f"/v1/predictions/{prediction['id']}", 200, JSON, body)
    nested = {**prediction, "urls": {**prediction["urls"], "extra": "http://x/"}}
    with pytest.raises(AssertionError, match=r"\$\.urls"):
        checker.check("POST", SCHNELL, 201, JSON, orjson.dumps(nested))


def test_missing_field_and_bad_format_fail(
    checker: ResponseChecker, prediction: dict[str, Any]
) -> None:
    path = f"/v1/predictions/{prediction['id']}"
    missing = {k: v for k, v in prediction.items() if k != "status"}
    with pytest.raises(AssertionError, match="'status' is a required property"):
        checker.check("GET", path, 200, JSON, orjson.dumps(missing))
    with pytest.raises(AssertionError, match="is not a 'date-time'"):
        checker.check("GET", path, 200, JSON, orjson.dumps({**prediction, "created_at": "today"}))


def test_undocumented_status_fails(checker: ResponseChecker) -> None:
    with pytest.raises(AssertionError, match="undocumented status 418"):
        checker.check("GET", f"/v1/predictions/{VALID_ID}", 418, PROBLEM, problem(418))
    # 201 is the /v1 create status; /replicate/v1 documents 200 only.
    with pytest.raises(AssertionError, match="undocumented status 201"):
        checker.check("POST", "/replicate/v1/predictions", 201, JSON, b"{}")


def test_wrong_content_type_fails(checker: ResponseChecker) -> None:
    path = f"/v1/predictions/{VALID_ID}"
    checker.check("GET", path, 404, PROBLEM, problem(404))
    with pytest.raises(AssertionError, match="content type 'application/json' is not documented"):
        checker.check("GET", path, 404, JSON, problem(404))
    with pytest.raises(AssertionError, match="content type '\\(none\\)'"):
        checker.check("GET", path, 404, {}, problem(404))


def test_problem_body_is_validated(checker: ResponseChecker) -> None:
    path = f"/v1/predictions/{VALID_ID}"
    with pytest.raises(AssertionError, match="'trace' was unexpected"):
        checker.check("GET", path, 404, PROBLEM, problem(404, trace="..."))
    with pytest.raises(AssertionError, match="problem status 400"):
        checker.check("GET", path, 404, PROBLEM, problem(400))
    with pytest.raises(AssertionError, match="not JSON"):
        checker.check("GET", path, 404, PROBLEM, b"Not Found")


def test_405_on_known_path_needs_allow(checker: ResponseChecker) -> None:
    path = f"/v1/predictions/{VALID_ID}"
    checker.check("DELETE", path, 405, {**PROBLEM, "Allow": "GET, HEAD"}, problem(405))
    with pytest.raises(AssertionError, match="required header Allow is missing"):
        checker.check("DELETE", path, 405, PROBLEM, problem(405))
    with pytest.raises(AssertionError, match=r"lacks \['GET', 'POST'\]"):
        checker.check("PUT", "/v1/predictions", 405, {**PROBLEM, "Allow": "GET"}, problem(405))
    with pytest.raises(AssertionError, match="must be 405, not 404"):
        checker.check("DELETE", path, 404, PROBLEM, problem(404))


def test_unknown_path_must_be_404_not_found(checker: ResponseChecker) -> None:
    checker.check("GET", "/v1/nothing-here", 404, PROBLEM, problem(404))
    with pytest.raises(AssertionError, match="404 is due"):
        checker.check("GET", "/v1/predictions/", 307, {}, b"")
    with pytest.raises(AssertionError, match="'html' was unexpected"):
        checker.check("GET", "/nothing-here", 404, PROBLEM, problem(404, html="<h1>"))


def test_encoded_slash_matches_by_its_decoded_form(
    checker: ResponseChecker, prediction: dict[str, Any]
) -> None:
    raw = "/v1/models/black-forest-labs%2Fflux-schnell/predictions"
    body = orjson.dumps(prediction)
    checker.check("POST", raw, 201, JSON, body, decoded_path=SCHNELL)
    # Raw, it reads as owner `black-forest-labs%2Fflux-schnell`, name `predictions` (getModel).
    with pytest.raises(AssertionError, match="must be 405, not 201"):
        checker.check("POST", raw, 201, JSON, body)


def test_head_is_get_without_a_body(checker: ResponseChecker) -> None:
    checker.check("HEAD", "/openapi.yaml", 200, {"content-type": "application/yaml"}, b"")
    with pytest.raises(AssertionError, match="HEAD response has a body"):
        checker.check("HEAD", "/openapi.yaml", 200, {"content-type": "application/yaml"}, b"x")
    with pytest.raises(AssertionError, match="content type 'text/plain'"):
        checker.check("HEAD", "/openapi.yaml", 200, {"content-type": "text/plain"}, b"")


def test_binary_bodies_check_only_the_media_type(checker: ResponseChecker) -> None:
    path = f"/delivery/{VALID_ID}/out-0.webp"
    checker.check("GET", path, 200, {"content-type": "image/webp"}, b"RIFF....WEBP")
    with pytest.raises(AssertionError, match="'image/gif' is not documented"):
        checker.check("GET", path, 200, {"content-type": "image/gif"}, b"GIF89a")


def test_client_fixture_checks_every_response(app: Starlette, client: TestClient) -> None:
    """The hook on the `client` fixture fails the request that got an undocumented response."""

    async def leaky(request: Request) -> JSONResponse:
        return JSONResponse({"next": None, "previous": None, "results": [], "total": 0})

    async def teapot(request: Request) -> JSONResponse:
        return JSONResponse({}, status_code=418)

    app.router.routes[:0] = [
        Route("/v1/predictions", leaky, methods=["GET"]),
        Route("/v1/models/{owner}/{name}", teapot, methods=["GET"]),
    ]
    with pytest.raises(AssertionError, match="'total' was unexpected"):
        client.get("/v1/predictions")
    with pytest.raises(AssertionError, match="undocumented status 418"):
        client.get("/v1/models/black-forest-labs/flux-dev")
    assert client.get("/replicate/v1/predictions").status_code == 200
