"""An output image's first render, over real HTTP: concurrent first requests share one render,
and a render (off the event loop) never holds up other requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from mock_server import Settings, images
from tests.conftest import AUTH, LiveServer, start_live_server

CLIENTS = 8
WAIT_S = 20.0


class HeldRender:
    """images.render, held until the test releases it; counts the renders started."""

    def __init__(self) -> None:
        self.started = 0
        self.release = threading.Event()
        self.real = images.render

    def __call__(self, *args: Any, **kwargs: Any) -> bytes:
        self.started += 1
        assert self.release.wait(WAIT_S), "the test never released the render"
        return self.real(*args, **kwargs)


@pytest.fixture
def server() -> Iterator[LiveServer]:
    live, thread = start_live_server(Settings(port=0, time_scale=0), loop="uvloop")
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_first_requests_share_one_render_that_holds_up_nothing_else(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldRender()
    monkeypatch.setattr(images, "render", held)
    cache = server.app.state.ctx.images
    arrived: list[str] = []
    real_get = cache.get

    async def counted_get(key: str, render: Any) -> bytes:
        arrived.append(key)
        data: bytes = await real_get(key, render)
        return data

    monkeypatch.setattr(cache, "get", counted_get)
    create = "/v1/models/black-forest-labs/flux-schnell/predictions"
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=WAIT_S) as http:
        done = http.post(create, json={"input": {"prompt": "a fox"}}, headers={"Prefer": "wait"})
        assert done.json()["status"] == "succeeded"
        url = done.json()["output"][0]
        with ThreadPoolExecutor(CLIENTS) as pool:
            fetches = [pool.submit(httpx.get, url, timeout=WAIT_S) for _ in range(CLIENTS)]
            wait_for(lambda: len(arrived) == CLIENTS, f"{CLIENTS} requests for the image")
            # The render is held in its thread: the API still answers, creates included.
            assert held.started == 1
            assert http.get(f"/v1/predictions/{done.json()['id']}").status_code == 200
            assert http.post(create, json={"input": {"prompt": "a hen"}}).status_code == 201
            assert http.get("/v1/predictions").status_code == 200
            assert not any(f.done() for f in fetches)
            held.release.set()
            answers = [f.result() for f in fetches]
    assert held.started == 1  # one render for all eight
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert answers[0].headers["content-type"] == "image/webp"
