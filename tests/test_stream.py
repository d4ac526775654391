"""`urls.stream` (Server-Sent Events) and `urls.web` for a prediction."""

from __future__ import annotations

from starlette.testclient import TestClient

from mock_server.clock import ManualClock

CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"


def parse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
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
