"""The fast get (routes/fastpath.py) answers exactly what the ordinary route answers, and hands
every other case to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.routes import fastpath
from tests.conftest import AUTH, PREFIXES, create
from tests.redis_server import RedisServer

Taken = list[bool]


def spy(monkeypatch: pytest.MonkeyPatch, name: str, fast: Callable[[Any], bool]) -> Taken:
    """Whether each call of the fast path `name` answered (True) or handed on (False), told
    from what it returns by `fast`."""
    seen: Taken = []
    original = getattr(fastpath, name)

    async def spied(*args: Any) -> Any:
        result = await original(*args)
        seen.append(fast(result))
        return result

    monkeypatch.setattr(fastpath, name, spied)
    return seen


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> Taken:
    """Whether each get went the fast way (True) or was handed on (False)."""
    return spy(monkeypatch, "get_prediction", bool)


def served(client: TestClient, path: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    r = client.get(path, **kwargs)
    return r.status_code, r.content, {k: v for k, v in r.headers.items() if k != "date"}


def client_for(settings: Settings, clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock=clock), raise_server_exceptions=False) as c:
        c.headers.update(AUTH)
        yield c


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("public_url", [None, "https://mock.example/base"])
def test_fast_answers_match_the_ordinary_route(
    prefix: str, public_url: str | None, taken: Taken
) -> None:
    clock = ManualClock()
    for client in client_for(Settings(public_url=public_url), clock):
        r = client.post(
            f"{prefix}/models/black-forest-labs/flux-dev/predictions",
            json={"input": {"prompt": "a fox"}},
        )
        assert r.status_code in (200, 201), r.text  # 200 under /replicate/v1
        path = f"{prefix}/predictions/{r.json()['id']}"
        for advance in (0.0, 1.0, 60.0):  # starting, processing, succeeded
            clock.advance(advance)
            fast = served(client, path)
            ordinary = served(client, path, params={"unused": "1"})  # a query: handed on
            assert fast == ordinary
            assert fast[0] == 200
        assert taken == [True, False] * 3


def test_everything_else_is_handed_to_the_ordinary_route(taken: Taken) -> None:
    clock = ManualClock()
    for client in client_for(Settings(), clock):
        p = create(client)
        path = f"/v1/predictions/{p['id']}"
        assert client.get(path, headers={"Authorization": "Bearer someone-else"}).status_code == 404
        assert client.get(path, headers={"Authorization": "Basic x"}).status_code == 401
        assert client.get("/v1/predictions/not-an-id").status_code == 404
        assert client.get(path, headers={"X-Mock-Scenario": "server-error"}).status_code == 500
        assert taken == [False] * 4
        rule = {"name": "down", "match": {"route": "getPrediction"}, "http": {"status": 503}}
        assert client.post("/__admin/scenarios", json=rule).status_code == 201
        assert client.get(path).status_code == 503  # a rule could match: the ordinary way
        assert taken[-1] is False


def test_polls_clock_and_rate_limits_take_the_ordinary_route(taken: Taken) -> None:
    for settings in (Settings(clock="polls"), Settings(rate_limits="real")):
        for client in client_for(settings, ManualClock()):
            p = create(client)
            assert client.get(f"/v1/predictions/{p['id']}").status_code == 200
    assert taken == [False, False]


def test_a_cached_output_file_is_served_as_the_ordinary_route_serves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = spy(monkeypatch, "get_output_file", bool)
    clock = ManualClock()
    for client in client_for(Settings(), clock):
        p = create(client, "/v1/models/black-forest-labs/flux-schnell/predictions")
        url = f"/delivery/{p['id']}/out-0.webp"
        assert client.get(url).status_code == 404  # not finished yet: the ordinary route says so
        clock.advance(60)
        first = served(client, url)  # rendered by the ordinary route
        fast = served(client, url)  # from the cache, the fast way
        ordinary = served(client, url, params={"unused": "1"})
        assert first == fast == ordinary
        assert fast[0] == 200
        assert fast[2]["content-type"] == "image/webp"
        assert client.get(f"/delivery/{p['id']}/out-1.webp").status_code == 404
        assert seen == [False, False, True, False, False]


@pytest.fixture
def creates(monkeypatch: pytest.MonkeyPatch) -> Taken:
    """Whether each create by model went the fast way (True) or was handed on (False)."""
    return spy(monkeypatch, "create_prediction", lambda handed: handed is None)


def never_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hand_on(ctx: Any, scope: Any, receive: Any, *args: Any) -> Any:
        return receive

    monkeypatch.setattr(fastpath, "create_prediction", hand_on)


def posted(client: TestClient, path: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
    r = client.post(path, **kwargs)
    return r.status_code, r.content, {k: v for k, v in r.headers.items() if k != "date"}


# (body, headers, status): creates the fast path hands to the ordinary route, which answers them.
HANDED_ON: list[tuple[Any, dict[str, str], int]] = [
    ({"input": {"prompt": 5, "aspect_ratio": "7:3", "num_outputs": 9}}, {}, 422),  # three lines
    ({"input": {"prompt": "a"}, "extra": 1}, {}, 422),  # the body's schema refuses it
    ({"input": "a"}, {}, 422),
    ({"input": {"prompt": "a"}, "webhook": "http://127.0.0.1:9/hook"}, {}, 201),
    ({"input": {"prompt": "a"}}, {"Prefer": "respond-async"}, 201),
    ({"input": {"prompt": "a"}}, {"Cancel-After": "1s"}, 201),
    ({"input": {"prompt": "a"}}, {"X-Mock-Scenario": "server-error"}, 500),
    ({"input": {"prompt": "a"}}, {"Content-Type": "text/plain"}, 415),
    ({"input": {"prompt": "a"}}, {"Authorization": "Basic x"}, 401),
    ("[1, 2]", {}, 400),  # not an object
    ("{", {}, 400),  # not JSON
    ({"input": {"prompt": "a", "image": "data:image/png;base64,AAAA"}}, {}, 201),  # image input
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("public_url", [None, "https://mock.example/base"])
def test_a_fast_create_answers_as_the_ordinary_route(
    prefix: str, public_url: str | None, creates: Taken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same clock: the fast answer and the ordinary one are the same bytes and
    headers, and so is the prediction a get shows afterwards."""
    path = f"{prefix}/models/black-forest-labs/flux-dev/predictions"
    body = {"input": {"prompt": "a fox", "num_outputs": 2, "output_format": "png"}}
    answers = []
    for fast in (True, False):
        if not fast:
            never_fast(monkeypatch)
        for client in client_for(Settings(public_url=public_url), ManualClock()):
            created = posted(client, path, json=body)
            shown = served(client, f"{prefix}/predictions/{orjson.loads(created[1])['id']}")
            answers.append((created, shown))
    assert creates == [True]
    assert answers[0] == answers[1]
    (status, content, headers), _ = answers[0]
    assert status == (200 if prefix == "/replicate/v1" else 201)
    assert orjson.loads(content)["status"] == "starting"
    assert headers["location"].endswith(f"/predictions/{orjson.loads(content)['id']}")


@pytest.mark.parametrize(("body", "headers", "status"), HANDED_ON)
def test_every_other_create_is_handed_to_the_ordinary_route(
    body: Any,
    headers: dict[str, str],
    status: int,
    creates: Taken,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path may read the body before it can tell: the ordinary route must still get
    it, and answer exactly as it does without the fast path."""
    path = "/v1/models/black-forest-labs/flux-dev/predictions"
    kwargs: dict[str, Any] = {"headers": headers}
    kwargs["content" if isinstance(body, str) else "json"] = body
    answers = []
    for fast in (True, False):
        if not fast:
            never_fast(monkeypatch)
        for client in client_for(Settings(), ManualClock()):
            answers.append(posted(client, path, **kwargs))
    assert creates == [False]
    assert answers[0] == answers[1]
    assert answers[0][0] == status, answers[0][1]


def test_creates_a_server_set_up_needs_checked_take_the_ordinary_route(creates: Taken) -> None:
    path = "/v1/models/black-forest-labs/flux-schnell/predictions"
    for settings in (Settings(clock="polls"), Settings(rate_limits="real")):
        for client in client_for(settings, ManualClock()):
            assert client.post(path, json={"input": {"prompt": "a"}}).status_code == 201
    for client in client_for(Settings(api_tokens=("only-this",)), ManualClock()):
        assert client.post(path, json={"input": {"prompt": "a"}}).status_code == 401
    for client in client_for(Settings(max_body_bytes=64), ManualClock()):
        r = client.post(path, json={"input": {"prompt": "a" * 100}})
        assert r.status_code == 413
    assert creates == [False, False, False, False]
    for client in client_for(Settings(), ManualClock()):
        unknown = "/v1/models/black-forest-labs/no-such/predictions"
        assert client.post(unknown, json={"input": {}}).status_code == 404
        rule = {"name": "slow", "match": {"route": "createPrediction"}, "http": {"status": 503}}
        assert client.post("/__admin/scenarios", json=rule).status_code == 201
        assert client.post(path, json={"input": {"prompt": "a"}}).status_code == 503
    assert creates == [False] * 6


def test_with_the_redis_store_the_fast_answers_match_too(
    redis_server: RedisServer, creates: Taken, taken: Taken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared store: the fast ways catch up with the other processes first, as the ordinary
    route does, and answer the same bytes."""
    path = "/v1/models/black-forest-labs/flux-dev/predictions"
    answers = []
    for fast in (True, False):
        redis_server.flush()
        if not fast:
            never_fast(monkeypatch)
        for client in client_for(Settings(store=redis_server.url), ManualClock()):
            created = posted(client, path, json={"input": {"prompt": "a fox"}})
            got = served(client, f"/v1/predictions/{orjson.loads(created[1])['id']}")
            ordinary = served(client, f"/v1/predictions/{orjson.loads(created[1])['id']}?x=1")
            assert got == ordinary
            answers.append((created, got))
    assert creates == [True]
    assert taken == [True, False, True, False]  # each app: the plain get fast, with a query not
    assert answers[0] == answers[1]


BODY = {"input": {"prompt": "a fox"}}


def test_the_journal_records_what_the_fast_ways_answer(creates: Taken, taken: Taken) -> None:
    for client in client_for(Settings(), ManualClock()):
        created = posted(client, "/v1/models/black-forest-labs/flux-dev/predictions", json=BODY)
        prediction_id = orjson.loads(created[1])["id"]
        got = served(client, f"/v1/predictions/{prediction_id}")
        assert (creates, taken) == ([True], [True])
        entries = client.get("/__admin/requests").json()["requests"]
        by_method = {e["method"]: e for e in entries}
        assert by_method["POST"]["status"] == 201
        assert by_method["POST"]["model"] == "black-forest-labs/flux-dev"
        assert orjson.loads(by_method["POST"]["request_body"]) == BODY
        assert by_method["GET"]["status"] == 200
        assert orjson.loads(by_method["GET"]["response_body"]) == orjson.loads(got[1])
