"""`urls.stream` (Server-Sent Events) and `urls.web` for a prediction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from replicate.client import Client
from starlette.testclient import TestClient

from mock_server import Settings
from mock_server.clock import ManualClock
from mock_server.routes import stream
from tests.conftest import LiveServer, start_live_server
from tests.threads import bounded

CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"


def parse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        if not block:
            continue  # an empty stream
        event: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            event[key] = value if key not in event else event[key] + "\n" + value
        events.append(event)
    return events


def test_stream_of_a_finished_prediction(client: TestClient, clock: ManualClock) -> None:
    created = client.post(CREATE, json={"input": {"prompt": "a cat", "num_outputs": 2}}).json()
    clock.advance(60)
    stream_url = created["urls"]["stream"]
    response = client.get(stream_url, headers={"Authorization": ""})  # npm sends no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    assert all("id" in e for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done"
    assert kinds.count("output") == 2
    assert "logs" in kinds
    final = client.get(created["urls"]["get"]).json()
    assert [e["data"] for e in events if e["event"] == "output"] == final["output"]


def test_stream_of_a_canceled_prediction_says_why(client: TestClient, clock: ManualClock) -> None:
    created = client.post(CREATE, json={"input": {"prompt": "a dog"}}).json()
    client.post(created["urls"]["cancel"])
    events = parse_events(client.get(created["urls"]["stream"]).text)
    assert events[-1]["event"] == "done"
    assert "canceled" in events[-1]["data"]


def test_unknown_stream_is_404(client: TestClient) -> None:
    response = client.get("/stream/" + "0" * 26)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_web_page_shows_status_and_images(client: TestClient, clock: ManualClock) -> None:
    created = client.post(CREATE, json={"input": {"prompt": "a <b>bold</b> cat"}}).json()
    page = client.get(created["urls"]["web"], headers={"Authorization": ""})
    assert page.status_code == 200
    assert "starting" in page.text
    assert "&lt;b&gt;bold" in page.text  # the prompt is escaped
    clock.advance(60)
    page = client.get(created["urls"]["web"])
    assert "succeeded" in page.text
    assert "/delivery/" in page.text


# --------------------------------------------------------------------------------------------
# How a stream ends, and resuming with Last-Event-ID
# --------------------------------------------------------------------------------------------

BOOM = {
    "name": "boom",
    "match": {"prompt": "^boom"},
    "outcome": {"status": "failed", "error": "Boom!"},
}


def finished_stream(client: TestClient, clock: ManualClock, ending: str) -> list[dict[str, str]]:
    """The whole stream of a flux-schnell prediction that ended as `ending` says."""
    headers = {"Cancel-After": "0s"} if ending == "aborted" else {}
    if ending == "failed":
        assert client.post("/__admin/scenarios", json=BOOM).status_code == 201
    prompt = "boom now" if ending == "failed" else f"a {ending} fox"
    created = client.post(CREATE, json={"input": {"prompt": prompt}}, headers=headers).json()
    if ending == "canceled":
        clock.advance(0.5)  # running, with some logs
        client.post(created["urls"]["cancel"])
    clock.advance(60)
    assert client.get(created["urls"]["get"]).json()["status"] == ending
    response = client.get(created["urls"]["stream"])
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


@pytest.mark.parametrize(
    ("ending", "tail"),
    [
        pytest.param("succeeded", [("done", {})], id="succeeded"),
        pytest.param(
            "failed",
            [("error", {"detail": "Boom!"}), ("done", {"reason": "error"})],
            id="failed",
        ),
        pytest.param(
            "canceled",
            [("error", {"detail": "Prediction was canceled"}), ("done", {"reason": "canceled"})],
            id="canceled",
        ),
        pytest.param(
            "aborted",
            [("error", {"detail": stream.ABORTED}), ("done", {"reason": "canceled"})],
            id="aborted",
        ),
    ],
)
def test_a_stream_ends_as_the_real_ones_do(
    client: TestClient, clock: ManualClock, ending: str, tail: list[tuple[str, Any]]
) -> None:
    events = finished_stream(client, clock, ending)
    assert [e["id"] for e in events] == [str(n) for n in range(1, len(events) + 1)]
    assert [(e["event"], json.loads(e["data"])) for e in events[-len(tail) :]] == tail
    kinds = [e["event"] for e in events]
    assert kinds.count("done") == 1
    assert ("output" in kinds) == (ending == "succeeded")
    assert ("error" in kinds) == (ending != "succeeded")
    if ending == "canceled":
        assert kinds[0] == "logs"  # the lines logged before the cancel come first


def test_last_event_id_resumes_after_that_event(client: TestClient, clock: ManualClock) -> None:
    whole = finished_stream(client, clock, "succeeded")
    url = client.get("/v1/predictions").json()["results"][0]["urls"]["stream"]
    for seen in range(len(whole) + 1):
        resumed = client.get(url, headers={"Last-Event-ID": str(seen)})
        assert parse_events(resumed.text) == whole[seen:]
    for junk in ("", "x", "-1", "1.5", "9" * 30):
        assert parse_events(client.get(url, headers={"Last-Event-ID": junk}).text) == whole


@pytest.mark.parametrize("ending", ["failed", "canceled", "aborted"])
def test_resuming_after_the_error_event_gets_only_done(
    client: TestClient, clock: ManualClock, ending: str
) -> None:
    whole = finished_stream(client, clock, ending)
    error, done = whole[-2:]
    assert error["event"] == "error"
    url = client.get("/v1/predictions").json()["results"][0]["urls"]["stream"]
    resumed = parse_events(client.get(url, headers={"Last-Event-ID": error["id"]}).text)
    assert resumed == [done]
    assert done["event"] == "done"
    assert json.loads(done["data"]) == {"reason": "error" if ending == "failed" else "canceled"}


@pytest.fixture(scope="module")
def manual_server() -> Iterator[LiveServer]:
    """uvicorn on a manual clock: the test moves time while a stream is open."""
    live, thread = start_live_server(Settings(port=0, clock="manual"))
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


def read_events(
    url: str, count: int | None = None, headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The first `count` events of a stream (then hang up), or all of them."""
    blocks: list[str] = []
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        block: list[str] = []
        for line in response.iter_lines():
            if line:
                block.append(line)
                continue
            if block:
                blocks.append("\n".join(block))
                block = []
            if count is not None and len(blocks) == count:
                break
    return parse_events("\n\n".join(blocks))


def test_a_client_reconnecting_mid_run_misses_nothing(manual_server: LiveServer) -> None:
    """Events are numbered the same on every connection, so a reconnect with the last id seen
    while the model ran continues exactly where the first connection stopped."""
    base = manual_server.url
    auth = {"Authorization": "Bearer r8_stream_resume"}
    body = {"input": {"prompt": "resume me", "num_inference_steps": 8}}
    created = httpx.post(
        base + "/v1/models/black-forest-labs/flux-dev/predictions", json=body, headers=auth
    ).json()
    httpx.post(base + "/__admin/clock", json={"advance": 2.0})  # processing, about half done
    first = read_events(created["urls"]["stream"], count=3)
    assert [e["event"] for e in first] == ["logs"] * 3
    httpx.post(base + "/__admin/clock", json={"advance": 60})
    rest = read_events(created["urls"]["stream"], headers={"Last-Event-ID": first[-1]["id"]})
    whole = read_events(created["urls"]["stream"])
    assert first + rest == whole
    assert whole[-1] == {"event": "done", "id": str(len(whole)), "data": "{}"}


def test_python_client_stream_raises_on_a_failed_prediction(live_server: LiveServer) -> None:
    """`replicate.stream` (1.x) raises on the `error` event, as against the real API; the
    failure comes from a scenario added through the admin API (the client sends no
    X-Mock-Scenario)."""
    name = f"stream-fail-{uuid.uuid4().hex[:8]}"
    rule = {
        "name": name,
        "match": {"prompt": f"^{name}"},
        "outcome": {"status": "failed", "error": "The model fell over"},
    }
    assert httpx.post(live_server.url + "/__admin/scenarios", json=rule).status_code == 201
    rc = Client(
        api_token="r8_stream_py",
        base_url=live_server.url + "/replicate",
        timeout=httpx.Timeout(10.0),
    )
    try:
        seen: list[str] = []

        def consume(prompt: str) -> None:
            for event in rc.stream("black-forest-labs/flux-schnell", input={"prompt": prompt}):
                seen.append(event.event.value)

        with pytest.raises(RuntimeError, match="The model fell over"):
            bounded(lambda: consume(f"{name} please"), 15)
        assert "done" not in seen
        seen.clear()
        bounded(lambda: consume("a fine fox"), 15)  # other prompts still succeed
        assert seen[-2:] == ["output", "done"]
    finally:
        httpx.delete(f"{live_server.url}/__admin/scenarios/{name}")
