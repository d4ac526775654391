"""Bad requests: exact status, problem+json body, the field named, and nothing stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from mock_server import Settings
from mock_server.clock import ManualClock
from tests.conftest import http_scope

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"
KONTEXT = "/v1/models/black-forest-labs/flux-kontext-pro/predictions"
BY_VERSION = "/v1/predictions"
VALID_ID = "0123456789abcdefghjkmnpqrs"
PROBLEM = "application/problem+json"


@pytest.fixture
def settings() -> Settings:
    """This module's app refuses bodies over 1000 bytes (the 413 case)."""
    return Settings(max_body_bytes=1000)


@dataclass(frozen=True)
class Case:
    status: int
    method: str = "POST"
    path: str = SCHNELL
    body: Any = None  # sent as JSON unless `raw` is given
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    field: str | None = None  # invalid_fields[0].field
    type: str | None = None  # invalid_fields[0].type
    description: str | None = None  # invalid_fields[0].description
    title: str | None = None


def ok(**inp: Any) -> dict[str, Any]:
    return {"input": {"prompt": "a cat", **inp}}


CASES = {
    "malformed-json": Case(400, raw=b'{input: {"prompt": "x"}}'),
    "truncated-json": Case(400, raw=b'{"input": {"prompt": "x"'),
    "json-array": Case(400, raw=b'[{"input": {"prompt": "x"}}]'),
    "json-string": Case(400, raw=b'"hello"'),
    "json-null": Case(400, raw=b"null"),
    "empty-body": Case(400, raw=b""),
    "whitespace-body": Case(400, raw=b"  \n "),
    "not-utf8": Case(400, raw=b'{"input": {"prompt": "\xff\xfe"}}'),
    "text-plain": Case(
        415,
        raw=orjson.dumps(ok()),
        headers={"content-type": "text/plain"},
        title="Unsupported media type",
    ),
    "form-encoded": Case(
        415, raw=b"input=x", headers={"content-type": "application/x-www-form-urlencoded"}
    ),
    "too-large": Case(413, body=ok(prompt="x" * 2000), title="Request body too large"),
    "input-string": Case(
        422,
        body={"input": "a cat"},
        field="input",
        type="invalid_type",
        description="Invalid type. Expected: object, given: string",
    ),
    "input-null": Case(422, body={"input": None}, field="input", type="invalid_type"),
    "missing-input": Case(
        422,
        body={"webhook": "https://example.com/hook"},
        field="",
        type="required",
        description="input is required",
    ),
    "empty-object": Case(422, body={}, field="", type="required", description="input is required"),
    "unknown-top-level-key": Case(
        422,
        body={**ok(), "model": "black-forest-labs/flux-schnell"},
        field="",
        type="additional_property_not_allowed",
        description="Additional property model is not allowed",
    ),
    "missing-prompt": Case(
        422,
        body={"input": {"num_outputs": 1}},
        field="input",
        type="required",
        description="prompt is required",
    ),
    "prompt-not-string": Case(
        422, body={"input": {"prompt": 42}}, field="input.prompt", type="invalid_type"
    ),
    "num-outputs-5": Case(
        422,
        body=ok(num_outputs=5),
        field="input.num_outputs",
        type="number_lte",
        description="Must be less than or equal to 4",
        title="Input validation failed",
    ),
    "num-outputs-0": Case(
        422,
        body=ok(num_outputs=0),
        field="input.num_outputs",
        type="number_gte",
        description="Must be greater than or equal to 1",
    ),
    "num-inference-steps-5": Case(
        422,
        body=ok(num_inference_steps=5),
        field="input.num_inference_steps",
        type="number_lte",
        description="Must be less than or equal to 4",
    ),
    "output-format-gif": Case(
        422,
        body=ok(output_format="gif"),
        field="input.output_format",
        type="enum",
        description='output_format must be one of the following: "webp", "jpg", "png"',
    ),
    "kontext-webp": Case(
        422,
        path=KONTEXT,
        body=ok(output_format="webp"),
        field="input.output_format",
        type="enum",
        description='output_format must be one of the following: "jpg", "png"',
    ),
    "num-outputs-string": Case(
        422,
        body=ok(num_outputs="two"),
        field="input.num_outputs",
        type="invalid_type",
        description="Invalid type. Expected: integer, given: string",
    ),
    "num-outputs-bool": Case(
        422,
        body=ok(num_outputs=True),
        field="input.num_outputs",
        type="invalid_type",
        description="Invalid type. Expected: integer, given: boolean",
    ),
    "num-outputs-float": Case(
        422, body=ok(num_outputs=1.5), field="input.num_outputs", type="invalid_type"
    ),
    "by-version-missing-version": Case(
        422,
        path=BY_VERSION,
        body=ok(),
        field="",
        type="required",
        description="version is required",
    ),
    "by-version-not-string": Case(
        422, path=BY_VERSION, body={**ok(), "version": 7}, field="version"
    ),
    "by-version-unknown": Case(
        422,
        path=BY_VERSION,
        body={**ok(), "version": "black-forest-labs/flux-3"},
        title="Invalid version or not permitted",
    ),
    "by-version-empty-body": Case(400, path=BY_VERSION, raw=b""),
    "unknown-model": Case(404, path="/v1/models/black-forest-labs/flux-9/predictions", body=ok()),
    "unknown-owner": Case(404, path="/replicate/v1/models/nobody/flux-dev/predictions", body=ok()),
    "id-too-short": Case(404, method="GET", path="/v1/predictions/abc"),
    "id-too-long": Case(404, method="GET", path=f"/v1/predictions/{VALID_ID}x"),
    "id-bad-alphabet": Case(404, method="GET", path="/v1/predictions/" + "u" * 26),
    "id-uppercase": Case(404, method="GET", path=f"/v1/predictions/{VALID_ID.upper()}"),
    "id-unknown": Case(404, method="GET", path=f"/v1/predictions/{VALID_ID}"),
    "cancel-unknown": Case(404, method="POST", path=f"/replicate/v1/predictions/{VALID_ID}/cancel"),
    "cancel-bad-id": Case(404, method="POST", path="/v1/predictions/i-am-not-an-id/cancel"),
    "file-unknown": Case(404, method="GET", path=f"/delivery/{VALID_ID}/out-0.webp"),
    "file-bad-name": Case(404, method="GET", path=f"/delivery/{VALID_ID}/secret.txt"),
    "version-unknown-model": Case(404, method="GET", path=f"/v1/models/x/y/versions/{'0' * 64}"),
    "delete-prediction": Case(405, method="DELETE", path=f"/v1/predictions/{VALID_ID}"),
    "put-predictions": Case(405, method="PUT", path="/replicate/v1/predictions"),
    "get-create": Case(405, method="GET", path=SCHNELL),
    "unknown-path": Case(404, method="GET", path="/v1/nothing-here"),
    "unknown-root": Case(404, method="GET", path="/nothing-here"),  # `/` is the demo page
    "bad-cursor": Case(400, method="GET", path="/v1/predictions?cursor=%%%"),
}


def send(client: TestClient, case: Case) -> Any:
    headers = {"content-type": "application/json", **case.headers}
    content = case.raw if case.raw is not None else None
    if content is None and case.body is not None:
        content = orjson.dumps(case.body)
    if case.method == "GET" or (content is None and case.method != "POST"):
        return client.request(case.method, case.path)
    return client.request(case.method, case.path, content=content or b"", headers=headers)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request(client: TestClient, case: Case) -> None:
    r = send(client, case)
    assert r.status_code == case.status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["status"] == case.status
    if case.title is not None:
        assert body["title"] == case.title
    if case.status == 405:
        assert "allow" in r.headers
        assert r.headers["allow"]
    if case.field is not None:
        problems = body["invalid_fields"]
        assert problems
        first = problems[0]
        assert first["field"] == case.field
        if case.type is not None:
            assert first["type"] == case.type
        if case.description is not None:
            assert first["description"] == case.description
        shown = case.field or "(root)"
        line = f"- {shown}: {first['description']}\n"
        assert line in body["detail"]
        assert body["title"] == "Input validation failed"
    assert "Traceback" not in r.text
    listed = client.get("/v1/predictions").json()
    assert listed["results"] == [], "a failed request stored a prediction"
    assert client.get("/replicate/v1/predictions").json()["results"] == []


def test_every_problem_listed(client: TestClient) -> None:
    r = client.post(SCHNELL, json=ok(num_outputs=9, output_format="gif", aspect_ratio="7:3"))
    assert r.status_code == 422
    fields = sorted(p["field"] for p in r.json()["invalid_fields"])
    assert fields == ["input.aspect_ratio", "input.num_outputs", "input.output_format"]
    assert r.json()["detail"].count("\n") == 3


def problems_of(response: Any) -> list[tuple[str, str]]:
    """(field, type) of every listed problem, after checking `detail` has one line for each."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["title"] == "Input validation failed"
    listed = body["invalid_fields"]
    lines = [f"- {p['field'] or '(root)'}: {p['description']}\n" for p in listed]
    assert body["detail"] == "".join(lines)
    return [(p["field"], p["type"]) for p in listed]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        pytest.param(
            SCHNELL,
            {"input": {"prompt": 5, "aspect_ratio": "7:3", "num_outputs": 9}},
            [
                ("input.aspect_ratio", "enum"),
                ("input.num_outputs", "number_lte"),
                ("input.prompt", "invalid_type"),  # both schemas find it: listed once
            ],
            id="model-and-body-schema",
        ),
        pytest.param(
            SCHNELL,
            {"input": {"aspect_ratio": "7:3"}},
            [("input", "required"), ("input.aspect_ratio", "enum")],
            id="missing-prompt-and-bad-enum",
        ),
        pytest.param(
            SCHNELL,
            {
                "input": {"prompt": 5, "num_outputs": 0, "output_quality": 101},
                "model": "black-forest-labs/flux-schnell",
                "webhook": "not a url",
                "webhook_events_filter": ["start", "finish"],
            },
            [
                ("", "additional_property_not_allowed"),
                ("input.num_outputs", "number_gte"),
                ("input.output_quality", "number_lte"),
                ("input.prompt", "invalid_type"),
                ("webhook", "format"),
                ("webhook_events_filter.1", "enum"),
            ],
            id="body-level-problems-alongside",
        ),
        pytest.param(
            SCHNELL,
            {"input": "a cat", "extra": 1, "stream": "yes"},
            [
                ("", "additional_property_not_allowed"),
                ("input", "invalid_type"),
                ("stream", "invalid_type"),
            ],
            id="input-not-an-object",
        ),
        pytest.param(
            SCHNELL,
            {"webhook": "https://example.com/hook", "version": "x"},
            [("", "additional_property_not_allowed"), ("", "required")],
            id="input-missing",
        ),
        pytest.param(
            BY_VERSION,
            {
                "version": "black-forest-labs/flux-schnell",
                "input": {"prompt": None, "num_outputs": 9},
                "x": 1,
            },
            [
                ("", "additional_property_not_allowed"),
                ("input.num_outputs", "number_lte"),
                ("input.prompt", "invalid_type"),
            ],
            id="by-version",
        ),
        pytest.param(
            BY_VERSION,
            {"input": {"prompt": 5}, "webhook": "nope"},
            [("", "required"), ("input.prompt", "invalid_type"), ("webhook", "format")],
            id="by-version-without-version",
        ),
    ],
)
def test_every_problem_of_every_schema_listed_once(
    client: TestClient, path: str, body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    first = client.post(path, json=body)
    assert problems_of(first) == expected
    assert client.post(path, json=body).json() == first.json()  # the same order every time
    assert client.get("/v1/predictions").json()["results"] == []


def test_delete_allow_header(client: TestClient) -> None:
    r = client.delete(f"/v1/predictions/{VALID_ID}")
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]


@pytest.mark.parametrize(
    "path", [SCHNELL, "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"]
)
def test_unknown_input_keys_kept(client: TestClient, path: str) -> None:
    inp = {
        "prompt": "x",
        "input_image": "https://example.com/a.png",
        "safety_tolerance": 6,
        "zz": None,
    }
    r = client.post(path, json={"input": inp})
    assert r.status_code in (200, 201)
    created = r.json()
    assert created["input"] == inp
    assert client.get(f"/v1/predictions/{created['id']}").json()["input"] == inp


def test_json_content_type_variants(client: TestClient) -> None:
    """`application/json; charset=utf-8` and `+json` media types are JSON too."""
    for ctype in ("application/json; charset=utf-8", "application/vnd.api+json"):
        r = client.post(SCHNELL, content=orjson.dumps(ok()), headers={"content-type": ctype})
        assert r.status_code == 201, (ctype, r.text)


@pytest.mark.parametrize(
    "inp",
    [
        {"prompt": "x", "seed": -1},
        {"prompt": "", "output_quality": 0},
        {"prompt": "\u0000\U0001f600 " * 50},
        {"prompt": "x", "seed": 10**30},
        {"prompt": "x", "megapixels": "0.25", "aspect_ratio": "9:21"},
        {"prompt": "x", "extra": {"deep": [{"deeper": [1, 2.5, None, True]}]}},
    ],
)
def test_odd_but_valid_inputs_never_500(
    client: TestClient, clock: ManualClock, inp: dict[str, Any]
) -> None:
    r = client.post(SCHNELL, json={"input": inp})
    assert r.status_code == 201, r.text
    clock.advance(5)
    done = client.get(f"/v1/predictions/{r.json()['id']}").json()
    assert done["status"] == "succeeded"
    for url in done["output"]:
        assert client.get(url).status_code == 200


def test_integral_float_num_outputs(client: TestClient, clock: ManualClock) -> None:
    """JSON Schema counts 4.0 as an integer, so it must give 4 images, not silently 1."""
    r = client.post(SCHNELL, json=ok(num_outputs=4.0))
    assert r.status_code == 201, r.text
    clock.advance(5)
    done = client.get(f"/v1/predictions/{r.json()['id']}").json()
    assert len(done["output"]) == 4
    assert done["metrics"]["image_count"] == 4


PART = b'--x\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\nab'


@pytest.mark.parametrize(
    ("path", "content_type", "start"),
    [
        ("/v1/models/black-forest-labs/flux-dev/predictions", b"application/json", b'{"inp'),
        ("/v1/files", b"multipart/form-data; boundary=x", PART),
    ],
)
def test_a_client_that_leaves_mid_body_is_no_server_error(
    path: str, content_type: bytes, start: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A client gone while sending its body (a load test stopping, a timeout): recorded as 499,
    nothing logged as an unhandled error, nothing stored."""
    import asyncio

    from mock_server import create_app

    app = create_app(Settings(), clock=ManualClock())
    sent: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request", "body": start, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope(
        "POST",
        path.encode(),
        [(b"authorization", b"Bearer r8_gone"), (b"content-type", content_type)],
    )

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(main())
    assert sent[0]["status"] == 499
    assert "unhandled error" not in caplog.text
    with TestClient(app) as client:
        journal = client.get("/__admin/requests").json()
        assert [(e["path"], e["status"]) for e in journal["requests"]] == [(path, 499)]
        assert client.get("/__admin/predictions").json()["predictions"] == []
