"""Webhooks (mock_server/webhooks/): signed as Replicate signs them, the events of each filter
with the bodies a GET shows at their moments, `completed` retried with backoff and delivered
once, redirects refused, cancels and forced ends, the allow-list, the secret, the admin view,
scenarios and the queue bound.

A real receiver (http.server on 127.0.0.1, port 0, in a thread) records what arrives. The server
runs on a ManualClock: tests move it and wait, bounded, on a condition (what the receiver got,
what the server recorded), never on a sleep.
"""

from __future__ import annotations

import base64
import itertools
import logging
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
import replicate
from replicate.webhook import WebhookSigningSecret
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.cli import settings_from
from mock_server.clock import ManualClock, SystemClock
from mock_server.webhooks import delivery, message_id, sign, signed_headers
from mock_server.webhooks.schedule import events_filter, retry_delay, target_problems
from tests.conftest import AUTH, CHECKED, TOKEN, LiveServer, start_live_server

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"  # 0.2 s + 0.83 s, 4 steps
DEV = "/v1/models/black-forest-labs/flux-dev/predictions"  # 0.3 s + 3.2 s, 28 steps
ALL = ["start", "output", "logs", "completed"]
WAIT_S = 10.0
# The test vector of the official clients' tests (reference section 2.4).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# ----------------------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data


class Receiver:
    """An HTTP server that records every POST, then answers as told: the statuses in `answers`
    first (a 3xx with a Location), then 200; with a `gate`, only once the gate is open."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[int] = deque()
        self.gate: threading.Event | None = None
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._cond:
                    receiver.received.append(Received(self.path, headers, body))
                    status = receiver.answers.popleft() if receiver.answers else 200
                    receiver._cond.notify_all()
                if receiver.gate is not None:
                    receiver.gate.wait(WAIT_S)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int) -> list[Received]:
        """The first `count` requests, once they have arrived (fails after WAIT_S)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, WAIT_S):
                pytest.fail(f"the receiver got {len(self.received)} webhooks, not {count}")
            return list(self.received[:count])

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Silent:
    """A TCP listener on 127.0.0.1 that accepts every connection, reads what is sent and never
    answers; it counts the connections open at once (accepted, not yet closed by the sender)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready = self._selector.select(timeout=0.05)
            # Ends before new connections: a sender closes one before it opens the next, so
            # both seen at once must not count as two open.
            ready.sort(key=lambda event: event[0].fileobj is self.listener)
            for key, _ in ready:
                if key.fileobj is self.listener:
                    accepted, _ = self.listener.accept()
                    self._selector.register(accepted, selectors.EVENT_READ)
                    with self._cond:
                        self.accepted += 1
                        self.open += 1
                        self.most_open = max(self.most_open, self.open)
                        self._cond.notify_all()
                    continue
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the sender gave up and closed it
                    self._selector.unregister(conn)
                    conn.close()
                    with self._cond:
                        self.open -= 1
                        self._cond.notify_all()

    def wait_accepted(self, count: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.accepted >= count, WAIT_S):
                pytest.fail(f"{self.accepted} connections, not {count}, within {WAIT_S} s")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=WAIT_S)
        for key in list(self._selector.get_map().values()):
            fileobj = key.fileobj
            assert isinstance(fileobj, socket.socket)
            fileobj.close()
        self._selector.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    s = Silent()
    yield s
    s.close()


# ----------------------------------------------------------------------------- helpers


def create(
    client: TestClient | httpx.Client,
    path: str = SCHNELL,
    *,
    webhook: str,
    events: list[str] | None = None,
    prompt: str = "a fox",
    headers: dict[str, str] | None = None,
) -> str:
    body: dict[str, Any] = {"input": {"prompt": prompt}, "webhook": webhook}
    if events is not None:
        body["webhook_events_filter"] = events
    response = client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    pid: str = response.json()["id"]
    return pid


def events_of(pid: str, received: list[Received]) -> list[str]:
    """Each request's event, told by its webhook-id (the body does not name the event)."""
    names = {message_id(pid, e): e for e in ("start", "output", "completed")}
    names |= {message_id(pid, "logs", n): "logs" for n in range(100)}
    return [names[r.headers["webhook-id"]] for r in received]


def waiting(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {WAIT_S} s")
        threading.Event().wait(0.005)


def settle(app: Starlette) -> None:
    """Wait until nothing is followed, queued or in flight: all that will arrive has."""
    hooks = app.state.ctx.webhooks
    waiting(lambda: not hooks.busy(), "idle")


def attempts(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/__admin/webhooks", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["webhooks"]
    return found


def wait_attempts(client: TestClient, pid: str, count: int) -> list[dict[str, Any]]:
    """Attempts recorded for `pid`, oldest first, once there are `count`."""
    waiting(lambda: len(attempts(client, prediction_id=pid)) >= count, f"{count} attempts")
    return attempts(client, prediction_id=pid)[::-1]


def secret_of(client: TestClient | httpx.Client) -> str:
    response = client.get("/v1/webhooks/default/secret")
    assert response.status_code == 200, response.text
    key: str = response.json()["key"]
    return key


def verify(secret: str, r: Received) -> None:
    """Both verifiers a receiver would use accept it, within the 5-minute tolerance."""
    assert Webhook(secret).verify(r.body, r.headers) == r.data
    replicate.webhooks.validate(
        headers=r.headers,
        body=r.body.decode(),
        secret=WebhookSigningSecret(key=secret),
        tolerance=300,
    )


# ----------------------------------------------------------------------------- signing


def test_signature_matches_the_reference_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = signed_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    # The official client checks it (no tolerance: the vector is from 2021).
    replicate.webhooks.validate(
        headers=headers, body=VECTOR_BODY.decode(), secret=WebhookSigningSecret(key=VECTOR_SECRET)
    )


def test_signature_verifies_with_standardwebhooks_and_refuses_a_changed_body() -> None:
    now = int(SystemClock().now().timestamp())
    headers = signed_headers(VECTOR_SECRET, VECTOR_ID, now, VECTOR_BODY)
    assert Webhook(VECTOR_SECRET).verify(VECTOR_BODY, headers) == {"test": 2432232314}
    with pytest.raises(WebhookVerificationError):
        Webhook(VECTOR_SECRET).verify(b'{"test": 1}', headers)


def test_message_ids_are_stable_per_prediction_and_event() -> None:
    pid = "k31cbm70fdrm80ctg73s0zcwgc"
    ids = [message_id(pid, e) for e in ("start", "output", "completed")]
    ids += [message_id(pid, "logs", n) for n in range(3)]
    assert all(re.fullmatch(r"msg_[0-9A-Za-z]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert message_id(pid, "completed") == ids[2]
    assert message_id("0" * 26, "completed") != ids[2]


# ----------------------------------------------------------------------------- the secret


def test_secret_is_stable_per_token_and_seed(client: TestClient) -> None:
    key = secret_of(client)
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", key)
    assert len(base64.b64decode(key.removeprefix("whsec_"))) == 24
    assert client.get("/replicate/v1/webhooks/default/secret").json() == {"key": key}
    assert secret_of(client) == key
    with TestClient(create_app(Settings(), clock=ManualClock()), headers=AUTH) as again:
        assert secret_of(again) == key  # another server, same seed and token
    other = client.get("/v1/webhooks/default/secret", headers={"Authorization": "Bearer r8_b"})
    assert other.json()["key"] != key
    assert client.get("/v1/webhooks/default/secret", headers={"Authorization": ""}).status_code == (
        401
    )
    client.post("/__admin/reset", json={"seed": 7})
    assert secret_of(client) != key


# ----------------------------------------------------------------------------- events


def test_default_filter_sends_output_then_completed(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    pid = create(client, webhook=receiver.url)
    clock.advance(0.5)
    assert client.get(f"/v1/predictions/{pid}").json()["status"] == "processing"
    clock.advance(1)  # past the end at 1.03 s
    got = receiver.wait_for(2)
    settle(app)
    assert events_of(pid, receiver.received) == ["output", "completed"]
    final = client.get(f"/v1/predictions/{pid}").json()
    assert final["status"] == "succeeded"
    assert [r.data for r in got] == [final, final]
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["webhook-id"] != got[1].headers["webhook-id"]
    secret = secret_of(client)
    for r in got:
        verify(secret, r)


@pytest.mark.parametrize(
    ("event", "count"),
    [
        pytest.param("start", 1, id="start"),
        pytest.param("logs", 2, id="logs-at-0.2s-and-0.7s"),
        pytest.param("output", 1, id="output"),
        pytest.param("completed", 1, id="completed"),
    ],
)
def test_each_filter_value_sends_only_its_event(
    app: Starlette,
    client: TestClient,
    clock: ManualClock,
    receiver: Receiver,
    event: str,
    count: int,
) -> None:
    pid = create(client, webhook=receiver.url, events=[event])
    clock.advance(5)
    settle(app)
    assert events_of(pid, receiver.received) == [event] * count


def test_every_body_is_the_get_at_its_moment(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    """flux-dev, every event: `start` and the first `logs` at 0.3 s, a `logs` every 500 ms
    while the logs grow, then `output` and `completed` at 3.5 s."""
    pid = create(client, DEV, webhook=receiver.url, events=ALL)

    def now() -> dict[str, Any]:
        body: dict[str, Any] = client.get(f"/v1/predictions/{pid}").json()
        return body

    clock.advance(0.3)
    got = receiver.wait_for(2)
    moment = now()
    assert moment["status"] == "processing"
    assert [r.data for r in got] == [moment, moment]
    for i in range(6):  # 0.8, 1.3, ... 3.3 s
        clock.advance(0.5)
        assert receiver.wait_for(3 + i)[-1].data == now()
    clock.advance(0.2)
    got = receiver.wait_for(10)
    final = now()
    assert final["status"] == "succeeded"
    assert [r.data for r in got[-2:]] == [final, final]
    settle(app)
    events = events_of(pid, receiver.received)
    assert events == ["start", *["logs"] * 7, "output", "completed"]
    logs = [r.data["logs"] for r, e in zip(receiver.received, events, strict=True) if e == "logs"]
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(logs))
    secret = secret_of(client)
    for r in receiver.received:  # the official client's validator and standardwebhooks
        verify(secret, r)


def test_a_jump_of_the_clock_delivers_the_same_events_in_order(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    pid = create(client, DEV, webhook=receiver.url, events=["logs", "start", "completed"])
    clock.advance(60)
    settle(app)
    assert events_of(pid, receiver.received) == ["start", *["logs"] * 7, "completed"]


def test_urls_keep_the_prefix_of_the_create(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    path = "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"
    pid = create(client, path, webhook=receiver.url, events=["completed"])
    clock.advance(5)
    (got,) = receiver.wait_for(1)
    assert got.data["urls"]["get"] == f"http://testserver/replicate/v1/predictions/{pid}"
    assert got.data == client.get(f"/replicate/v1/predictions/{pid}").json()


def test_polls_clock_sends_events_as_reads_move_the_prediction(receiver: Receiver) -> None:
    app = create_app(Settings(clock="polls"))
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        pid = create(client, webhook=receiver.url, events=ALL)
        client.get(f"/v1/predictions/{pid}")  # processing, half way
        receiver.wait_for(2)
        final = client.get(f"/v1/predictions/{pid}").json()
        assert final["status"] == "succeeded"
        got = receiver.wait_for(5)
        settle(app)
        assert events_of(pid, receiver.received) == ["start", "logs", "logs", "output", "completed"]
        assert got[-1].data == final


# ----------------------------------------------------------------------------- delivery


def test_completed_is_delivered_exactly_once_to_a_2xx_receiver(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    pid = create(client, webhook=receiver.url, events=["completed"])
    clock.advance(2)
    (got,) = receiver.wait_for(1)
    settle(app)
    clock.advance(120)  # long past any retry
    client.get(f"/v1/predictions/{pid}")
    settle(app)
    assert len(receiver.received) == 1
    (attempt,) = attempts(client, prediction_id=pid)
    assert attempt["event"] == "completed"
    assert (attempt["attempt"], attempt["status"], attempt["error"]) == (1, 200, None)
    assert attempt["url"] == receiver.url
    assert attempt["webhook_id"] == got.headers["webhook-id"]
    assert attempt["latency_ms"] >= 0


def test_completed_is_retried_with_backoff_until_a_2xx(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.answers.extend([500, 503])
    pid = create(client, webhook=receiver.url, events=["completed"])
    clock.advance(2)
    wait_attempts(client, pid, 1)
    clock.advance(0.999)
    assert len(attempts(client, prediction_id=pid)) == 1  # the retry waits its 1 s
    clock.advance(0.001)
    receiver.wait_for(2)
    wait_attempts(client, pid, 2)
    clock.advance(2)
    got = receiver.wait_for(3)
    settle(app)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    secret = secret_of(client)
    for r in got:
        verify(secret, r)
    recorded = attempts(client, prediction_id=pid)
    assert [(a["attempt"], a["status"], a["error"]) for a in recorded] == [
        (3, 200, None),
        (2, 503, "HTTP 503"),
        (1, 500, "HTTP 500"),
    ]
    assert {a["webhook_id"] for a in recorded} == {got[0].headers["webhook-id"]}


@pytest.mark.parametrize("settings", [Settings(time_scale=0.5)], ids=["time-scale-0.5"])
def test_the_backoff_is_scaled_by_the_time_scale(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver, settings: Settings
) -> None:
    """`--time-scale 0.5`: the first retry waits 0.5 s of the server's clock, not 1 s."""
    receiver.answers.append(500)
    pid = create(client, webhook=receiver.url, events=["completed"])
    clock.advance(2)
    wait_attempts(client, pid, 1)
    clock.advance(0.499)
    assert len(attempts(client, prediction_id=pid)) == 1  # the retry waits its 0.5 s
    assert len(receiver.received) == 1
    clock.advance(0.001)
    got = receiver.wait_for(2)
    settle(app)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    recorded = attempts(client, prediction_id=pid)
    assert [(a["attempt"], a["status"], a["error"]) for a in recorded] == [
        (2, 200, None),
        (1, 500, "HTTP 500"),
    ]


def test_only_completed_is_retried_and_only_seven_times(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.answers.extend([500] * 20)
    pid = create(client, webhook=receiver.url, events=ALL)
    clock.advance(2)  # start, 2 logs, output, completed: 5 attempts
    wait_attempts(client, pid, 5)
    for n, delay in enumerate([1, 2, 4, 8, 16, 32]):
        clock.advance(delay)
        wait_attempts(client, pid, 6 + n)
    settle(app)
    recorded = wait_attempts(client, pid, 11)
    assert [(a["event"], a["attempt"]) for a in recorded] == [
        ("start", 1),
        ("logs", 1),
        ("logs", 1),
        ("output", 1),
        *[("completed", n) for n in range(1, 8)],
    ]
    assert len(receiver.received) == 11


def test_redirects_are_not_followed(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.answers.append(302)
    pid = create(client, webhook=receiver.url, events=["completed"])
    clock.advance(2)
    (first,) = wait_attempts(client, pid, 1)
    assert first["status"] == 302
    assert "redirect" in first["error"]
    clock.advance(1)  # a redirect is a failure: retried, at the same URL
    receiver.wait_for(2)
    settle(app)
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]
    assert [a["status"] for a in attempts(client, prediction_id=pid)] == [200, 302]


@pytest.mark.parametrize(
    ("route", "status", "events"),
    [
        pytest.param("/v1/predictions/{}/cancel", "canceled", ["start", "completed"], id="cancel"),
        pytest.param(
            "/__admin/predictions/{}/cancel", "canceled", ["start", "completed"], id="admin-cancel"
        ),
        pytest.param(
            "/__admin/predictions/{}/succeed",
            "succeeded",
            ["start", "output", "completed"],
            id="admin-succeed",
        ),
        pytest.param(
            "/__admin/predictions/{}/fail", "failed", ["start", "completed"], id="admin-fail"
        ),
    ],
)
def test_an_early_end_sends_completed_at_once_and_once(
    app: Starlette,
    client: TestClient,
    clock: ManualClock,
    receiver: Receiver,
    route: str,
    status: str,
    events: list[str],
) -> None:
    pid = create(client, DEV, webhook=receiver.url, events=["start", "output", "completed"])
    clock.advance(1)  # processing
    receiver.wait_for(1)
    assert client.post(route.format(pid)).status_code == 200
    got = receiver.wait_for(len(events))  # the clock has not moved
    final = client.get(f"/v1/predictions/{pid}").json()
    assert final["status"] == status
    assert got[-1].data == final
    clock.advance(10)  # past the model's own end
    settle(app)
    assert events_of(pid, receiver.received) == events


def test_a_cancel_before_the_start_sends_no_start(
    app: Starlette, client: TestClient, receiver: Receiver
) -> None:
    pid = create(client, DEV, webhook=receiver.url, events=["start", "completed"])
    client.post(f"/v1/predictions/{pid}/cancel")
    (got,) = receiver.wait_for(1)
    settle(app)
    assert events_of(pid, receiver.received) == ["completed"]
    assert got.data["status"] == "canceled"
    assert got.data["started_at"] is None


def test_a_deadline_before_the_start_completes_aborted(
    app: Starlette, client: TestClient, receiver: Receiver
) -> None:
    pid = create(client, DEV, webhook=receiver.url, headers={"Cancel-After": "0s"})
    (got,) = receiver.wait_for(1)
    settle(app)
    assert events_of(pid, receiver.received) == ["completed"]
    assert got.data["status"] == "aborted"


def test_scenario_webhook_fail_fails_attempts_without_sending(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    rule = client.post("/__admin/scenarios", json={"name": "hooks-down", "webhook_fail": 2})
    assert rule.status_code == 201
    assert rule.json()["webhook_fail"] == 2
    pid = create(
        client,
        webhook=receiver.url,
        events=["completed"],
        headers={"X-Mock-Scenario": "hooks-down"},
    )
    clock.advance(2)
    wait_attempts(client, pid, 1)
    clock.advance(1)
    wait_attempts(client, pid, 2)
    assert receiver.received == []
    clock.advance(2)
    receiver.wait_for(1)
    settle(app)
    recorded = wait_attempts(client, pid, 3)
    assert [(a["attempt"], a["status"]) for a in recorded] == [(1, None), (2, None), (3, 200)]
    assert "connection refused" in recorded[0]["error"]
    assert len(receiver.received) == 1


def test_no_connection_is_a_failure_and_retried(
    app: Starlette, client: TestClient, clock: ManualClock
) -> None:
    closed = Receiver()
    url = closed.url
    closed.close()  # nothing listens there now
    pid = create(client, webhook=url, events=["output", "completed"])
    clock.advance(2)
    recorded = wait_attempts(client, pid, 2)
    assert [(a["event"], a["status"]) for a in recorded] == [("output", None), ("completed", None)]
    assert recorded[1]["error"]
    clock.advance(1)
    wait_attempts(client, pid, 3)


def test_reset_forgets_attempts_and_cancels_pending_retries(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    receiver.answers.append(500)
    pid = create(client, webhook=receiver.url, events=["completed"])
    clock.advance(2)
    wait_attempts(client, pid, 1)
    assert app.state.ctx.webhooks.busy()  # the retry waits
    assert client.post("/__admin/reset").status_code == 200
    assert not app.state.ctx.webhooks.busy()
    assert attempts(client) == []
    clock.advance(100)
    assert len(receiver.received) == 1


def test_admin_webhooks_filters(
    app: Starlette, client: TestClient, clock: ManualClock, receiver: Receiver
) -> None:
    first = create(client, webhook=receiver.url, prompt="one")
    second = create(client, webhook=receiver.url, prompt="two")
    clock.advance(2)
    receiver.wait_for(4)
    settle(app)
    assert len(attempts(client)) == 4
    assert {a["prediction_id"] for a in attempts(client, prediction_id=first)} == {first}
    assert [a["event"] for a in attempts(client, event="completed")] == ["completed"] * 2
    (newest,) = attempts(client, limit="1")
    assert newest == attempts(client)[0]
    assert second in {a["prediction_id"] for a in attempts(client)}
    for bad in ({"event": "done"}, {"limit": "0"}, {"prediction_id": "nope"}, {"status": "200"}):
        assert client.get("/__admin/webhooks", params=bad).status_code == 400


def test_the_queue_drops_the_oldest_events_but_never_completed(
    app: Starlette,
    client: TestClient,
    clock: ManualClock,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(delivery, "MAX_QUEUED", 3)
    pid = create(client, DEV, webhook=receiver.url, events=["logs", "completed"])
    with caplog.at_level(logging.WARNING, logger="mock_server.webhooks"):
        clock.advance(10)  # 7 logs and completed come due at once
        receiver.wait_for(3)
        settle(app)
    assert [r.headers["webhook-id"] for r in receiver.received] == [
        message_id(pid, "logs", 5),
        message_id(pid, "logs", 6),
        message_id(pid, "completed"),
    ]
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 5


# ----------------------------------------------------------------------------- allow-list


def test_a_webhook_host_not_allowed_is_a_422_naming_webhook(receiver: Receiver) -> None:
    settings = Settings(webhook_allow_hosts=("hooks.example", "localhost:9"))
    app = create_app(settings, clock=ManualClock())  # nothing comes due: nothing is sent
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        by_version = "/replicate/v1/predictions"
        for path, extra in ((SCHNELL, {}), (by_version, {"version": "black-forest-labs/flux-dev"})):
            body = {"input": {"prompt": "a fox"}, "webhook": receiver.url, **extra}
            refused = client.post(path, json=body)
            assert refused.status_code == 422
            (problem,) = refused.json()["invalid_fields"]
            assert problem["field"] == "webhook"
            assert problem["type"] == "host_not_allowed"
            assert "127.0.0.1" in problem["description"]
        for url in (
            "https://hooks.example/in",
            "http://HOOKS.example:8080/x",
            "http://localhost:9/",
        ):
            ok = client.post(SCHNELL, json={"input": {"prompt": url}, "webhook": url})
            assert ok.status_code == 201, ok.text
        refused = client.post(
            SCHNELL, json={"input": {"prompt": "x"}, "webhook": "ftp://hooks.example/"}
        )
        assert refused.status_code == 422
        assert [p["field"] for p in refused.json()["invalid_fields"]] == ["webhook"]
        assert len(client.get("/v1/predictions").json()["results"]) == 3


@pytest.mark.parametrize(
    ("url", "allowed", "problem"),
    [
        pytest.param("https://hooks.example/in", (), None, id="any-host"),
        pytest.param("HTTP://Hooks.Example:8080/in", ("hooks.example",), None, id="case"),
        pytest.param("http://localhost:9/", ("localhost:9",), None, id="host-and-port"),
        pytest.param("http://localhost:8/", ("localhost:9",), "host_not_allowed", id="port"),
        pytest.param("http://[::1]:9/", ("[::1]",), None, id="ipv6"),
        pytest.param("http://[::1/", (), None, id="unparsable-but-http"),
        pytest.param("http://[::1/", ("::1",), "host_not_allowed", id="unparsable-host"),
        pytest.param("ftp://hooks.example/", (), "format", id="ftp"),
        pytest.param("mailto:a@hooks.example", (), "format", id="mailto"),
    ],
)
def test_target_problems(url: str, allowed: tuple[str, ...], problem: str | None) -> None:
    found = target_problems({"webhook": url}, allowed)
    assert [(p.type, p.field) for p in found] == ([(problem, "webhook")] if problem else [])


def test_schedule_without_webhook_fields() -> None:
    assert events_filter(None) == ("output", "completed")
    assert events_filter([]) == ("output", "completed")
    assert events_filter(["completed", "logs", "start"]) == ("start", "logs", "completed")
    assert target_problems({}, ("hooks.example",)) == []
    assert [retry_delay(n, 1.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, None]
    assert retry_delay(3, 0.5) == 2.0
    assert retry_delay(1, 0.0) == 0.0


def test_allow_hosts_from_flags_and_environment() -> None:
    argv = ["--webhook-allow-host", "a.example", "--webhook-allow-host", "b.example"]
    _, settings = settings_from(argv, {})
    assert settings.webhook_allow_hosts == ("a.example", "b.example")
    environ = {"MOCK_SERVER_WEBHOOK_ALLOW_HOST": "c.example, d.example"}
    assert settings_from([], environ)[1].webhook_allow_hosts == ("c.example", "d.example")
    assert Settings().webhook_allow_hosts == ()


# ----------------------------------------------------------------------------- live servers


@pytest.fixture
def manual_live() -> Iterator[LiveServer]:
    live, thread = start_live_server(Settings(port=0, clock="manual"))
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


def test_a_slow_receiver_does_not_delay_the_api(
    manual_live: LiveServer, receiver: Receiver
) -> None:
    clock = manual_live.app.state.ctx.clock
    assert isinstance(clock, ManualClock)
    receiver.gate = threading.Event()  # the receiver holds every delivery until opened
    with httpx.Client(base_url=manual_live.url, headers=AUTH, timeout=WAIT_S) as http:
        pids = [create(http, webhook=receiver.url, prompt=f"fox {i}") for i in range(3)]
        clock.advance(5)
        receiver.wait_for(3)  # each prediction's `output` is in flight, held
        for pid in pids:
            assert http.get(f"/v1/predictions/{pid}").json()["status"] == "succeeded"
        create(http, webhook=receiver.url, prompt="another")
        assert http.get("/__admin/webhooks").json() == {"webhooks": []}  # none answered yet
        receiver.gate.set()
        receiver.wait_for(6)
        waiting(lambda: len(http.get("/__admin/webhooks").json()["webhooks"]) == 6, "6 attempts")
        # The official Python client reads the secret and validates what arrived.
        official = replicate.client.Client(api_token=TOKEN, base_url=manual_live.url)
        key = official.webhooks.default.secret()
        assert key.key == secret_of(http)
        for r in receiver.received:
            replicate.webhooks.validate(
                headers=r.headers, body=r.body.decode(), secret=key, tolerance=300
            )


def test_a_receiver_that_never_answers_is_bounded_and_timed_out(
    app: Starlette,
    client: TestClient,
    clock: ManualClock,
    silent: Silent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver that accepts and never answers: at most CONCURRENCY deliveries are open at
    once, each attempt ends at the delivery timeout and is listed as timed out, and creates are
    answered all the while."""
    monkeypatch.setattr(delivery, "TIMEOUT_S", 0.5)
    pids = [
        create(client, webhook=silent.url, events=["completed"], prompt=f"fox {i}")
        for i in range(20)
    ]
    clock.advance(2)  # all 20 `completed` come due at once
    silent.wait_accepted(1)  # deliveries are hanging
    for i in range(5):
        pid = create(client, webhook=silent.url, events=["completed"], prompt=f"more {i}")
        assert client.get(f"/v1/predictions/{pid}").json()["status"] == "starting"
    waiting(lambda: len(attempts(client, event="completed")) >= 20, "20 attempts")
    silent.wait_accepted(20)
    recorded = attempts(client, event="completed")
    assert sorted(a["prediction_id"] for a in recorded) == sorted(pids)
    assert {(a["attempt"], a["status"], a["url"]) for a in recorded} == {(1, None, silent.url)}
    assert {a["error"] for a in recorded} == {"timed out after 0.5 s"}
    assert silent.accepted == 20  # one connection each; the retries wait for the clock
    assert silent.most_open <= delivery.CONCURRENCY


def test_the_real_clock_follows_the_scaled_timings(
    live_server: LiveServer, receiver: Receiver
) -> None:
    """The session's live server: real time at 2% of the models' timings (retries too)."""
    receiver.answers.extend([500, 500, 500])
    headers = {"Authorization": "Bearer r8_webhooks_real_clock"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=WAIT_S) as http:
        pid = create(http, DEV, webhook=receiver.url, events=["start", "completed"])
        got = receiver.wait_for(4)  # start (500), completed: 500 twice, then 200
        assert events_of(pid, got) == ["start", "completed", "completed", "completed"]
        final = http.get(f"/v1/predictions/{pid}").json()
        assert final["status"] == "succeeded"
        assert got[-1].data == final


def test_record_mode_lists_deliveries_without_sending(receiver: Receiver) -> None:
    """`--webhooks record`: each delivery is listed as delivered, none is sent (no network)."""
    clock = ManualClock()
    app = create_app(Settings(webhooks="record"), clock=clock)
    with TestClient(app, headers=AUTH) as client:
        client.event_hooks = CHECKED
        pid = create(client, webhook=receiver.url)
        clock.advance(2)
        client.get(f"/v1/predictions/{pid}")
        waiting(lambda: len(attempts(client, prediction_id=pid)) == 2, "both recorded")
        settle(app)
        listed = attempts(client, prediction_id=pid)
        assert sorted(a["event"] for a in listed) == ["completed", "output"]
        assert all((a["status"], a["error"]) == (None, None) for a in listed)
    assert receiver.received == []
