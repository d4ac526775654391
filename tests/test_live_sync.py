"""Sync mode (`Prefer: wait=N`) over real HTTP on the real clock: a prediction that ends well
inside N seconds is answered `succeeded` with its output, every time.

The server runs on uvloop, as `python -m mock_server` does: its timers fire up to a millisecond
early, which made a single sleep give up just before the end (about one create in four).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from mock_server import Settings
from tests.conftest import AUTH, CHECKED, start_live_server

CREATES = 40
MODELS = ("flux-schnell", "flux-dev")  # 0.2 + 0.83 s and 0.3 + 3.2 s at time scale 1


@contextmanager
def serving(settings: Settings, loop: str) -> Iterator[str]:
    """uvicorn on `loop` in a thread, on a free 127.0.0.1 port; yields its URL."""
    live, thread = start_live_server(settings, loop=loop)
    try:
        yield live.url
    finally:
        live.server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize(("scale", "wait"), [(1.0, 30), (0.05, 10)], ids=["scale-1", "scale-0.05"])
def test_sync_creates_that_end_in_time_all_succeed(scale: float, wait: int) -> None:
    with (
        serving(Settings(port=0, time_scale=scale), loop="uvloop") as url,
        httpx.Client(base_url=url, headers=AUTH, event_hooks=CHECKED, timeout=wait + 10) as client,
    ):

        def create(n: int) -> tuple[str, httpx.Response]:
            model = MODELS[n % len(MODELS)]
            response = client.post(
                f"/v1/models/black-forest-labs/{model}/predictions",
                json={"input": {"prompt": f"fox {n}"}},
                headers={"Prefer": f"wait={wait}"},
            )
            return model, response

        with ThreadPoolExecutor(CREATES) as pool:
            answers = list(pool.map(create, range(CREATES), timeout=wait + 20))

    early: list[tuple[str, Any]] = []
    for model, response in answers:
        assert response.status_code == 201, response.text
        assert response.headers["preference-applied"] == f"wait={wait}"
        body = response.json()
        if body["status"] != "succeeded" or not body["output"]:
            early.append((model, body["status"]))
    assert early == [], f"{len(early)} of {CREATES} sync creates gave up before the end"
