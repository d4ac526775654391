"""Clock modes, `Prefer: wait` (sync mode) and `Cancel-After` deadlines, driven by the clock."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvloop
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock, SystemClock
from tests.conftest import AUTH, CHECKED

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
    "value",
    [
        "wait=0",
        "wait=61",
        "wait=x",
        "wait=5s",
        "wait=-1",
        'wait="61"',
        "wait=1.5",
        "respond-async, wait=0",  # the first `wait` counts, wherever it is
        "wait=99, wait=5",
        "wait 5",  # not a list of preferences
        "wait=5 wait=6",
        "respond-async=a=b",
        "",
        ",",
        '"wait"',
        "wait=5;=x",
    ],
)
def test_invalid_prefer_is_400_and_stores_nothing(client: TestClient, value: str) -> None:
    response = create(client, DEV, Prefer=value)
    assert response.status_code == 400
    assert "Prefer" in response.json()["detail"]
    assert client.get("/v1/predictions").json()["results"] == []


@pytest.fixture
def instant() -> Iterator[TestClient]:
    """Predictions that end as they are created: sync mode answers at once, waiting for nothing."""
    app = create_app(Settings(time_scale=0), clock=ManualClock())
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        yield client


@pytest.mark.parametrize(
    ("value", "applied"),
    [
        ("wait", "wait"),
        ("wait=7", "wait=7"),
        ("wait=60", "wait=60"),
        ("WAIT=7", "wait=7"),
        ("wait = 7", "wait=7"),
        ('wait="7"', "wait=7"),
        ("wait=007", "wait=7"),
        ("wait=", "wait"),  # RFC 7240: an empty value is no value
        ('wait=""', "wait"),
        ("respond-async, wait=5", "wait=5"),
        ("handling=lenient, wait", "wait"),
        ("wait=5, wait=99", "wait=5"),  # only the first counts, whatever the later one says
        ("wait=5, wait=6", "wait=5"),
        ('wait=5; foo="a, b; c", respond-async', "wait=5"),
        ('return=representation; x="\\"", wait=3', "wait=3"),
        (", ,wait=5,,", "wait=5"),  # empty list elements are allowed (RFC 7230 section 7)
    ],
)
def test_prefer_list_applies_only_wait(instant: TestClient, value: str, applied: str) -> None:
    response = create(instant, DEV, Prefer=value)
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == applied
    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "value",
    ["respond-async", "handling=lenient", "sleep", 'return=minimal; foo="a b"', "waiting=99"],
)
def test_prefer_without_wait_is_ignored(instant: TestClient, value: str) -> None:
    response = create(instant, DEV, Prefer=value)
    assert response.status_code == 201, response.text
    assert "preference-applied" not in response.headers
    assert response.json()["status"] == "starting"  # not sync mode: answered at once


def test_prefer_header_lines_are_one_list(instant: TestClient) -> None:
    response = instant.post(
        DEV,
        json={"input": {"prompt": "a fox"}},
        headers=[("Prefer", "respond-async"), ("Prefer", "wait=3")],
    )
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == "wait=3"


class EarlyClock:
    """A clock whose sleeps end a little before the time asked for (as an event loop's timer
    may), until the remaining time is under a millisecond."""

    def __init__(self) -> None:
        self.time = datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps = 0

    def now(self) -> datetime:
        return self.time

    async def sleep_until(self, when: datetime, *, limit: float) -> None:
        await asyncio.sleep(0)
        self.sleeps += 1
        early = when - timedelta(microseconds=400)
        self.time = max(self.time, early if early - self.time > timedelta(milliseconds=1) else when)


def test_sync_wait_outlasts_a_clock_that_wakes_early() -> None:
    clock = EarlyClock()
    with TestClient(create_app(Settings(), clock=clock), headers=AUTH) as client:
        response = create(client, DEV, Prefer="wait=30")
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["output"]
    assert clock.sleeps >= 2  # it woke early, checked, and slept again


def test_system_clock_sleep_never_returns_early() -> None:
    """uvloop's timers run on whole milliseconds: a sleep of 1.3 ms may end after 1 ms."""
    clock = SystemClock()

    async def sleeps() -> list[timedelta]:
        late = []
        for n in range(60):
            when = clock.now() + timedelta(microseconds=1000 + 37 * n)
            await clock.sleep_until(when, limit=5)
            late.append(clock.now() - when)
        return late

    for loop_factory in (asyncio.new_event_loop, uvloop.new_event_loop):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            assert min(runner.run(sleeps())) >= timedelta(0)


def test_system_clock_sleep_stops_at_the_limit() -> None:
    clock = SystemClock()

    async def sleep() -> float:
        started = time.monotonic()
        await clock.sleep_until(clock.now() + timedelta(hours=1), limit=0.05)
        return time.monotonic() - started

    assert 0.04 <= asyncio.run(sleep()) < 5


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
