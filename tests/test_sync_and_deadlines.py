"""Clock modes, `Prefer: wait` (sync mode) and `Cancel-After` deadlines, driven by the clock."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH

DEV = "/v1/models/black-forest-labs/flux-dev/predictions"  # 0.3 s set-up + 3.2 s
FLEX = "/v1/models/black-forest-labs/flux-2-flex/predictions"  # 1.0 s + 22.6 s
PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)", re.MULTILINE)


def create(client: TestClient, path: str = DEV, **headers: str) -> Any:
    return client.post(path, json={"input": {"prompt": "a fox"}}, headers=headers)


def wait_until_stored(client: TestClient) -> None:
    """The waiting create stores its prediction first; poll for it (bounded, no sleep)."""
    for _ in range(10_000):
        if client.get("/v1/predictions").json()["results"]:
            return
    raise AssertionError("the waiting create never stored its prediction")


def test_manual_clock_drives_a_prediction_without_sleeping(
    client: TestClient, clock: ManualClock
) -> None:
    created = create(client).json()
    assert created["status"] == "starting"
    clock.advance(1)
    running = client.get(created["urls"]["get"]).json()
    assert running["status"] == "processing"
    assert int(PROGRESS.findall(running["logs"])[-1][0]) > 0
    clock.advance(3)
    done = client.get(created["urls"]["get"]).json()
    assert done["status"] == "succeeded"
    assert done["output"]


def test_polls_clock_moves_one_status_per_read() -> None:
    app = create_app(Settings(clock="polls"))
    with TestClient(app, headers=AUTH) as client:
        created = create(client, FLEX).json()
        assert created["status"] == "starting"
        url = created["urls"]["get"]
        first = client.get(url).json()
        assert first["status"] == "processing"
        assert PROGRESS.findall(first["logs"])
        assert client.get(url).json()["status"] == "succeeded"
        assert client.get(url).json()["status"] == "succeeded"
        # a list is not a read: it shows the state without moving it
        other = create(client, DEV).json()
        listed = client.get("/v1/predictions").json()["results"]
        assert next(r for r in listed if r["id"] == other["id"])["status"] == "starting"


def test_prefer_wait_returns_the_finished_prediction(
    client: TestClient, clock: ManualClock
) -> None:
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(create, client, DEV, Prefer="wait")
        wait_until_stored(client)
        clock.advance(10)
        response = pending.result(timeout=10)
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait"
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["output"]


def test_prefer_wait_n_times_out_as_starting(client: TestClient, clock: ManualClock) -> None:
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(create, client, FLEX, Prefer="wait=5")
        wait_until_stored(client)
        clock.advance(6)  # past the wait, long before flux-2-flex finishes
        response = pending.result(timeout=10)
    assert response.headers["preference-applied"] == "wait=5"
    body = response.json()
    assert body["status"] == "starting"  # the clients poll only from `starting`
    assert body["output"] is None
    clock.advance(60)
    assert client.get(body["urls"]["get"]).json()["status"] == "succeeded"


def test_prefer_wait_in_polls_mode_answers_at_once() -> None:
    with TestClient(create_app(Settings(clock="polls")), headers=AUTH) as client:
        body = create(client, FLEX, Prefer="wait=3").json()
    assert body["status"] == "succeeded"


@pytest.mark.parametrize(
    "value", ["wait=0", "wait=61", "wait=x", "sleep", "wait=", "respond-async"]
)
def test_invalid_prefer_is_400_and_stores_nothing(client: TestClient, value: str) -> None:
    response = create(client, DEV, Prefer=value)
    assert response.status_code == 400
    assert "Prefer" in response.json()["detail"]
    assert client.get("/v1/predictions").json()["results"] == []


def test_deadline_after_start_cancels(client: TestClient, clock: ManualClock) -> None:
    created = create(client, FLEX, **{"Cancel-After": "5s"}).json()
    assert created["deadline"].endswith("Z")
    clock.advance(4)
    assert client.get(created["urls"]["get"]).json()["status"] == "processing"
    clock.advance(2)
    done = client.get(created["urls"]["get"]).json()
    assert done["status"] == "canceled"
    assert done["completed_at"] == created["deadline"]


def test_deadline_before_start_aborts(client: TestClient, clock: ManualClock) -> None:
    created = create(client, FLEX, **{"Cancel-After": "500ms"}).json()
    clock.advance(30)
    done = client.get(created["urls"]["get"]).json()
    assert done["status"] == "aborted"
    assert done["started_at"] is None
    assert done["output"] is None


def test_deadline_later_than_the_run_changes_nothing(
    client: TestClient, clock: ManualClock
) -> None:
    created = create(client, DEV, **{"Cancel-After": "1m"}).json()
    clock.advance(120)
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"


@pytest.mark.parametrize("value", ["5", "soon", "-1s", "1x", "1m ago", "123456h", "1s1s1s1s"])
def test_invalid_cancel_after_is_400(client: TestClient, value: str) -> None:
    response = create(client, DEV, **{"Cancel-After": value})
    assert response.status_code == 400
    assert "Cancel-After" in response.json()["detail"]
    assert client.get("/v1/predictions").json()["results"] == []
