"""The user's checks, over real HTTP with the official Python client (`replicate` 1.0.x): a
throttled poll is retried, an NSFW failure raises ModelError, sync mode hands over to polling at
the `Prefer: wait=N` limit, and a fast model needs no poll at all.

Each test gets its own uvicorn server (so the journal and scenarios are its own) and drives it
through the admin API over HTTP. Every client call that could block runs in a daemon thread with
a deadline, so a server bug fails the test instead of hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import pytest
from replicate.client import Client
from replicate.exceptions import ModelError

from mock_server import Settings
from tests.conftest import CHECKED, TOKEN, LiveServer, start_live_server
from tests.threads import bounded as run_bounded

T = TypeVar("T")
DEADLINE_S = 20.0
# Word for word what Replicate's safety checker answers.
NSFW = "All generated images contained NSFW content. Try running it again with a different prompt."
Serve = Callable[..., LiveServer]


def bounded(call: Callable[[], T], timeout: float = DEADLINE_S) -> T:
    return run_bounded(call, timeout)


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a server with the given settings; each is stopped when the test ends."""
    started: list[tuple[LiveServer, threading.Thread]] = []

    def start(**settings: Any) -> LiveServer:
        live, thread = start_live_server(Settings(port=0, **settings))
        started.append((live, thread))
        return live

    yield start
    for live, thread in started:
        live.server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Client]:
    # The poll interval is read when a Client is constructed.
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)

    def build(live: LiveServer, hooks: Sequence[Callable[[httpx.Response], None]] = ()) -> Client:
        client = Client(
            api_token=TOKEN,
            base_url=live.url + "/replicate",  # 1.x adds /v1 itself
            timeout=httpx.Timeout(10.0),
            event_hooks={"response": [*CHECKED["response"], *hooks]},
        )
        assert client.poll_interval == pytest.approx(0.05)
        return client

    return build


def admin(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=10, event_hooks=CHECKED)


def journal(live: LiveServer, **params: str) -> list[dict[str, Any]]:
    with admin(live) as http:
        response = http.get("/__admin/requests", params=params)
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def builtin(live: LiveServer, name: str) -> dict[str, Any]:
    with admin(live) as http:
        rules = http.get("/__admin/scenarios").json()["scenarios"]
    rule: dict[str, Any] = next(r for r in rules if r["name"] == name)
    return rule


def add_scenario(live: LiveServer, rule: dict[str, Any]) -> None:
    with admin(live) as http:
        response = http.post("/__admin/scenarios", json=rule)
    assert response.status_code == 201, response.text


def test_wait_retries_two_throttled_polls(serve: Serve, make_client: Callable[..., Client]) -> None:
    live = serve(time_scale=0.02)
    throttle = builtin(live, "rate-limit")["http"]
    assert throttle["status"] == 429
    assert throttle["headers"] == {"Retry-After": "1"}
    add_scenario(
        live,
        {
            "name": "rl",
            "match": {"method": "GET", "route": "getPrediction"},
            "http": throttle,
            "times": 2,
        },
    )
    rc = make_client(live)
    prediction = rc.models.predictions.create(
        model="black-forest-labs/flux-schnell", input={"prompt": "a throttled cat"}
    )
    assert prediction.status == "starting"
    bounded(prediction.wait)  # the client retries each 429 after Retry-After
    status: str = prediction.status  # (mypy kept the narrowed `starting` across the wait)
    assert status == "succeeded"
    assert prediction.output

    throttled = journal(live, status="429")
    assert len(throttled) == 2
    path = f"/replicate/v1/predictions/{prediction.id}"
    assert {(e["method"], e["path"]) for e in throttled} == {("GET", path)}
    polls = journal(live, method="GET", path=path)
    assert [e["status"] for e in polls][-2:] == [429, 429]  # the first two, oldest last
    assert polls[0]["status"] == 200


def test_nsfw_prompt_raises_model_error(serve: Serve, make_client: Callable[..., Client]) -> None:
    live = serve(time_scale=0.02)
    add_scenario(
        live,
        {
            "name": "nsfw-prompt",
            "match": {"prompt": "nsfw"},
            "outcome": builtin(live, "nsfw")["outcome"],
        },
    )
    rc = make_client(live)
    with pytest.raises(ModelError) as caught:
        bounded(
            lambda: rc.run("black-forest-labs/flux-schnell", input={"prompt": "something nsfw"})
        )
    assert str(caught.value) == NSFW
    assert caught.value.prediction.status == "failed"
    assert caught.value.prediction.error == NSFW
    # Another prompt runs as usual.
    output = bounded(lambda: rc.run("black-forest-labs/flux-schnell", input={"prompt": "a cat"}))
    assert isinstance(output, list)
    assert len(output) == 1


def test_run_polls_after_the_prefer_wait_limit(
    serve: Serve, make_client: Callable[..., Client]
) -> None:
    """flux-2-flex takes (1 + 22.6) x 0.1 = 2.4 s here, longer than `Prefer: wait=1`."""
    live = serve(time_scale=0.1)
    creates: list[httpx.Response] = []

    def record(response: httpx.Response) -> None:
        if response.request.method == "POST":
            creates.append(response)

    rc = make_client(live, [record])
    output = bounded(
        lambda: rc.run("black-forest-labs/flux-2-flex", input={"prompt": "a patient fox"}, wait=1)
    )
    assert isinstance(output, str)
    assert output.startswith(live.url + "/delivery/")
    assert output.endswith(".webp")

    [create] = creates
    assert create.request.headers["prefer"] == "wait=1"
    assert create.headers["preference-applied"] == "wait=1"
    assert create.json()["status"] == "starting"
    [posted] = journal(live, method="POST")
    assert '"status":"starting"' in posted["response_body"]
    polls = journal(live, method="GET", path=f"/replicate/v1/predictions/{create.json()['id']}")
    assert polls, "the client polled after the wait"
    assert '"status":"succeeded"' in polls[0]["response_body"]


def test_run_with_prefer_wait_needs_no_poll_on_a_fast_model(
    serve: Serve, make_client: Callable[..., Client]
) -> None:
    live = serve(time_scale=0.02)
    rc = make_client(live)
    output = bounded(
        lambda: rc.run("black-forest-labs/flux-schnell", input={"prompt": "a quick cat"})
    )
    assert isinstance(output, list)
    assert len(output) == 1
    [posted] = journal(live, method="POST")
    assert '"status":"succeeded"' in posted["response_body"]
    assert journal(live, method="GET", path="/replicate/v1/predictions") == []
    assert journal(live, method="GET", path="/v1/predictions") == []
