"""The Redis store with real processes: `python -m mock_server --store redis://...` in child
processes on one redis-server of the test's own (tests/redis_server.py), real HTTP on 127.0.0.1.

Several processes on one Redis are one emulator: what one creates, the others get, cancel and
list; a reset or a clock move on one is seen by all; ids are the ones a single memory-store
process gives for the same requests; everything survives a restart of every process, and a
webhook that fell due while none ran is sent once after. A Redis that stops answering gives
503s, not hangs, until it answers again. SIGTERM lets a request in flight finish, and two
workers serve 10,000 predictions from 50 concurrent clients without an error or a loss.

Tests wait on conditions with deadlines (`until`), never on a sleep alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from mock_server.journal import redact
from tests import redis_server as redis_server_module
from tests.conftest import CHECKED, PROJECT, child_environ, spawned_server
from tests.redis_server import RedisServer, RedisServerMissing
from tests.test_live_soak import Client
from tests.test_webhooks import Receiver

T = TypeVar("T")
Server = tuple[str, subprocess.Popen[str]]

SEED = "7"
T1 = "r8_redis_one"
T2 = "r8_redis_two"
MODELS = "/v1/models/black-forest-labs"
TERMINAL = ("succeeded", "failed", "canceled", "aborted")
WAIT_S = 30.0


# ----------------------------------------------------------------------------- helpers


def until(condition: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """Poll `condition` until it returns something other than None/False; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def servers(count: int, *args: str, log: Path, label: str = "server") -> Iterator[list[Server]]:
    """`count` server processes started with the same flags; stopped (SIGTERM) on exit."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(spawned_server(*args, log=log / f"{label}-{i}.log"))
            for i in range(count)
        ]


def on_redis(redis: RedisServer, *extra: str) -> tuple[str, ...]:
    return ("--store", redis.url, "--seed", SEED, *extra)


def client(url: str, token: str = T1, checked: bool = True) -> httpx.Client:
    """Every response is checked against openapi.yaml (unless `checked=False`)."""
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        event_hooks=CHECKED if checked else None,
    )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return response.json()


def create(
    http: httpx.Client,
    model: str,
    prompt: str,
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    created: dict[str, Any] = ok(
        http.post(
            f"{MODELS}/{model}/predictions",
            json={"input": {"prompt": prompt}, **body},
            headers=headers or {},
        ),
        201,
    )
    return created


def get(http: httpx.Client, prediction_id: str) -> dict[str, Any]:
    got: dict[str, Any] = ok(http.get(f"/v1/predictions/{prediction_id}"))
    return got


def listed(http: httpx.Client) -> list[str]:
    """The caller's prediction ids, newest first, every page."""
    ids: list[str] = []
    url: str | None = "/v1/predictions"
    while url:
        page = ok(http.get(url))
        ids += [p["id"] for p in page["results"]]
        url = page["next"]
    return ids


def admin(url: str, method: str, path: str, **json: Any) -> Any:
    with httpx.Client(base_url=url, timeout=10, event_hooks=CHECKED) as http:
        response = http.request(method, f"/__admin{path}", json=json if json else None)
    assert response.status_code < 300, (path, response.status_code, response.text)
    return response.json() if response.content else None


def succeeded(http: httpx.Client, prediction_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        p = get(http, prediction_id)
        assert p["status"] not in TERMINAL or p["status"] == "succeeded", p
        return p if p["status"] == "succeeded" else None

    return until(done, f"{prediction_id} to succeed")


def upload(http: httpx.Client, content: bytes, name: str) -> dict[str, Any]:
    uploaded: dict[str, Any] = ok(
        http.post("/v1/files", files={"content": (name, content, "text/plain")}), 201
    )
    return uploaded


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ----------------------------------------------------------------------------- sharing

# (process, token, model, prompt), in order. The repeats of the first request get other ids
# (their occurrence counts), whichever process serves them.
SEQUENCE = [
    (0, T1, "flux-2-max", "a lighthouse"),
    (1, T1, "flux-schnell", "a fox"),
    (0, T1, "flux-2-max", "a lighthouse"),
    (1, T2, "flux-2-max", "a lighthouse"),
    (1, T1, "flux-2-max", "a lighthouse"),
    (0, T1, "flux-dev", "a fox"),
]


def run_sequence(urls: Sequence[str]) -> list[dict[str, Any]]:
    made = []
    for index, token, model, prompt in SEQUENCE:
        with client(urls[index % len(urls)], token) as http:
            made.append(create(http, model, prompt))
    return made


def test_two_processes_share_one_store_and_give_the_ids_of_one_memory_process(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    flags = ("--clock", "manual")  # nothing moves on its own: every prediction stays `starting`
    with servers(2, *on_redis(redis_server), *flags, log=tmp_path) as [(a, _), (b, _)]:
        made = run_sequence([a, b])
        ids = [p["id"] for p in made]
        assert len(set(ids)) == len(ids), "a repeated request must get a new id"
        for (index, *_), p in zip(SEQUENCE, made, strict=True):
            assert p["urls"]["get"].startswith((a, b)[index]), "URLs name the serving host"

        # Each process gets, lists and cancels what the other created.
        with client(a) as on_a, client(b) as on_b:
            for p in made[:3]:
                seen = get(on_b if p["urls"]["get"].startswith(a) else on_a, p["id"])
                assert (seen["id"], seen["model"], seen["input"]) == (
                    p["id"],
                    p["model"],
                    p["input"],
                )
                assert seen["status"] == "starting"
            assert get(on_b, ids[0])["urls"]["get"] == f"{b}/v1/predictions/{ids[0]}"
            t1 = [p["id"] for (_, token, *_), p in zip(SEQUENCE, made, strict=True) if token == T1]
            assert listed(on_b) == t1[::-1], "B lists T1's predictions, newest first"
            assert listed(on_a) == listed(on_b)

            canceled = ok(on_b.post(f"/v1/predictions/{ids[0]}/cancel"))
            assert canceled["status"] == "canceled"
            assert get(on_a, ids[0])["status"] == "canceled", "A sees B's cancel"
            assert get(on_a, ids[2])["status"] == "starting", "and only that one"
        with client(a, T2) as t2_on_a:
            assert listed(t2_on_a) == [ids[3]], "each token sees only its own"
            assert t2_on_a.get(f"/v1/predictions/{ids[0]}").status_code == 404
        for url in (a, b):
            health = admin(url, "GET", "/health")
            assert (health["store"], health["predictions"]) == ("redis", len(SEQUENCE))

    # One memory-store process with the same seed gives the same ids for the same requests.
    with spawned_server("--seed", SEED, *flags, log=tmp_path / "memory.log") as (alone, _):
        assert admin(alone, "GET", "/health")["store"] == "memory"
        assert [p["id"] for p in run_sequence([alone])] == ids


def test_a_reset_on_one_process_clears_what_every_process_shows(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    flags = ("--clock", "manual", "--webhooks", "record")  # deliveries are recorded, not sent
    hook: dict[str, Any] = {
        "webhook": "http://127.0.0.1:9/hook",
        "webhook_events_filter": ["start"],
    }
    with servers(2, *on_redis(redis_server), *flags, log=tmp_path) as [(a, _), (b, _)]:
        with client(a, T1) as t1_a, client(b, T2) as t2_b:
            first = create(t1_a, "flux-schnell", "one", **hook)
            ones = [first["id"], create(t1_a, "flux-dev", "one", **hook)["id"]]
            twos = [create(t2_b, "flux-schnell", "two", **hook)["id"]]
            twos.append(create(t2_b, "flux-dev", "two", **hook)["id"])
            file_one = upload(t1_a, b"one's file", "one.txt")["id"]
            file_two = upload(t2_b, b"two's file", "two.txt")["id"]
        admin(a, "POST", "/clock", advance=60)  # every `start` falls due

        def attempts() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = admin(b, "GET", "/webhooks?limit=100")["webhooks"]
            return found

        until(
            lambda: {w["prediction_id"] for w in attempts()} >= {*ones, *twos},
            "a recorded `start` webhook for every prediction",
        )
        journal = admin(b, "GET", "/requests?limit=1000")["requests"]
        assert {redact(T1), redact(T2)} <= {e["token"] for e in journal}

        # Reset one token on A: B shows nothing of it (journal first: T1's reads below are new
        # entries), and the other token's predictions, files, journal and webhooks survive.
        admin(a, "POST", "/reset", token=T1)
        journal = admin(b, "GET", "/requests?limit=1000")["requests"]
        assert redact(T1) not in {e["token"] for e in journal}
        assert redact(T2) in {e["token"] for e in journal}
        hooks = {w["prediction_id"] for w in attempts()}
        assert not hooks & set(ones), "T1's webhook attempts are gone"
        assert hooks >= set(twos), "T2's are kept"
        with client(b, T1) as t1_b, client(b, T2) as t2_b:
            assert listed(t1_b) == []
            assert all(t1_b.get(f"/v1/predictions/{i}").status_code == 404 for i in ones)
            assert t1_b.get(f"/v1/files/{file_one}").status_code == 404
            assert ok(t1_b.get("/v1/files"))["results"] == []
            assert listed(t2_b) == twos[::-1]
            assert ok(t2_b.get(f"/v1/files/{file_two}"))["id"] == file_two
        assert admin(b, "GET", "/health")["predictions"] == len(twos)
        # T1's id counters went too: the same request gets its first id again.
        with client(b, T1) as t1_b:
            assert create(t1_b, "flux-schnell", "one", **hook)["id"] == first["id"]

        # A full reset on A: B shows nothing at all, and ids start over for everyone.
        admin(a, "POST", "/reset")
        assert admin(b, "GET", "/health")["predictions"] == 0
        assert admin(b, "GET", "/requests")["requests"] == []
        assert admin(b, "GET", "/webhooks")["webhooks"] == []
        with client(b, T2) as t2_b:
            assert listed(t2_b) == []
            assert t2_b.get(f"/v1/files/{file_two}").status_code == 404
            assert create(t2_b, "flux-schnell", "two", **hook)["id"] == twos[0]


def test_a_manual_clock_moved_on_one_process_moves_for_all(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with (
        servers(2, *on_redis(redis_server), "--clock", "manual", log=tmp_path) as [
            (a, _),
            (b, _),
        ],
        client(b) as on_b,
    ):
        p = create(on_b, "flux-schnell", "a clock")  # 0.2 s + 0.83 s on the clock
        assert get(on_b, p["id"])["status"] == "starting"
        before = admin(b, "GET", "/clock")["now"]
        moved = admin(a, "POST", "/clock", advance=5)
        assert moment(moved["now"]) - moment(before) >= timedelta(seconds=5)
        assert admin(b, "GET", "/clock") == moved, "B reads the time A set"
        done = get(on_b, p["id"])
        assert done["status"] == "succeeded"
        assert done["output"], done


# ----------------------------------------------------------------------------- restart

KONTEXT_MAX_S = 9.5  # flux-kontext-max: 0.5 s set-up + 9.0 s run (README's model table)
DEV_S = 3.5  # flux-dev: 0.3 + 3.2


def test_everything_survives_a_restart_of_every_process(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Predictions (finished and running), files and id counters live in Redis; a webhook whose
    events fell due while no process ran is sent after the restart, each event once."""
    receiver = Receiver()
    try:
        with (
            servers(2, *on_redis(redis_server), log=tmp_path, label="before") as [
                (a, _),
                (b, _),
            ],
            client(a) as on_a,
            client(b) as on_b,
        ):
            hooked = create(on_a, "flux-dev", "a hook", webhook=receiver.url)
            running = create(on_b, "flux-kontext-max", "still running")
            instant = create(on_a, "flux-schnell", "done", headers={"X-Mock-Scenario": "instant"})
            assert succeeded(on_b, instant["id"])["output"]
            file = upload(on_b, b"kept across a restart", "kept.txt")
        # Both processes are gone now (stopped with SIGTERM).
        assert receiver.received == [], "the webhook went out before the stop: too slow a start"
        due = moment(hooked["created_at"]) + timedelta(seconds=DEV_S)
        until(
            lambda: datetime.now(UTC) > due + timedelta(seconds=0.5),
            "the webhook's events to fall due while no server runs",
            timeout=DEV_S + 5,
        )

        with servers(2, *on_redis(redis_server), log=tmp_path, label="after") as [
            (a, _),
            (b, _),
        ]:
            with client(a) as on_a, client(b) as on_b:
                # It went on advancing on its own timeline while no process ran: still running,
                # or (on a machine slow to restart) finished exactly when its run ended.
                still = get(on_a, running["id"])
                if still["status"] not in ("starting", "processing"):
                    assert still["status"] == "succeeded", still
                    ran = moment(still["completed_at"]) - moment(running["created_at"])
                    assert abs(ran.total_seconds() - KONTEXT_MAX_S) < 0.01, ran
                for p in (hooked, running, instant):
                    assert get(on_b, p["id"])["input"] == p["input"]
                assert get(on_b, instant["id"])["status"] == "succeeded"
                assert succeeded(on_b, running["id"])["output"]
                assert succeeded(on_a, hooked["id"])["output"]

                assert ok(on_a.get(f"/v1/files/{file['id']}"))["checksums"] == file["checksums"]
                download = on_b.get(f"/v1/files/{file['id']}/download")
                assert download.status_code == 200
                assert download.content == b"kept across a restart"

                # The id counters survived: the same request again is its second occurrence.
                again = create(on_b, "flux-schnell", "done", headers={"X-Mock-Scenario": "instant"})
                assert again["id"] not in {hooked["id"], running["id"], instant["id"]}
                assert listed(on_a)[0] == again["id"]

            # Each event (`output`, `completed`) arrives once, though two processes could send it.
            receiver.wait_for(2)
            settle = time.monotonic() + 1.5  # a duplicate would follow within this
            while time.monotonic() < settle:
                assert len(receiver.received) == 2, [r.headers for r in receiver.received]
                time.sleep(0.05)
            ids = Counter(r.headers["webhook-id"] for r in receiver.received)
            assert sorted(ids.values()) == [1, 1], ids
            completed = receiver.received[-1].data
            assert (completed["id"], completed["status"]) == (hooked["id"], "succeeded")
            for url in (a, b):  # one shared record of the attempts: one each, answered 200
                attempts = admin(url, "GET", f"/webhooks?prediction_id={hooked['id']}")
                assert sorted(
                    (w["event"], w["attempt"], w["status"]) for w in attempts["webhooks"]
                ) == [("completed", 1, 200), ("output", 1, 200)]
    finally:
        receiver.close()


# ----------------------------------------------------------------------------- outage


def test_a_redis_outage_gives_503s_and_service_returns_with_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with (
        spawned_server(
            *on_redis(redis_server), "--redis-timeout", "1", log=tmp_path / "server.log"
        ) as (url, proc),
        client(url) as http,
    ):
        p = create(http, "flux-schnell", "before the outage")
        redis_server.pause()
        try:
            started = time.monotonic()
            try:
                responses = (
                    http.get(f"/v1/predictions/{p['id']}", timeout=10),
                    http.post(
                        f"{MODELS}/flux-schnell/predictions",
                        json={"input": {"prompt": "during"}},
                        timeout=10,
                    ),
                )
            except httpx.TimeoutException:
                pytest.fail("no answer within 10 s while Redis answered nothing")
            for response in responses:
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                problem = response.json()
                assert (problem["title"], problem["status"]) == ("Service Unavailable", 503)
                assert "redis" in problem["detail"].lower(), problem
                assert response.headers["retry-after"].isdigit()
            elapsed = time.monotonic() - started
            print(f"\noutage: two 503s in {elapsed:.2f} s")  # noqa: T201
        finally:
            redis_server.resume()
        # No restart: the same process answers again at once.
        assert get(http, p["id"])["id"] == p["id"]
        assert ok(http.get("/v1/predictions"))["results"]
        assert proc.poll() is None
        assert admin(url, "GET", "/health")["store"] == "redis"


# ----------------------------------------------------------------------------- SIGTERM


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_sigterm_lets_a_waiting_create_finish(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A create held by `Prefer: wait=5` on flux-schnell (about 1 s at time scale 1) when the
    process gets SIGTERM still gets its whole answer: uvicorn's graceful shutdown."""
    args: tuple[str, ...] = ("--seed", SEED)
    if store == "redis":
        args = on_redis(request.getfixturevalue("redis_server"))
    with spawned_server(*args, log=tmp_path / "server.log") as (url, proc):
        answer: dict[str, httpx.Response] = {}

        def waiting_create() -> None:
            with client(url) as http:
                answer["response"] = http.post(
                    f"{MODELS}/flux-schnell/predictions",
                    json={"input": {"prompt": "finish me"}},
                    headers={"Prefer": "wait=5"},
                    timeout=15,
                )

        thread = threading.Thread(target=waiting_create, daemon=True)
        thread.start()
        with client(url) as http:
            until(lambda: ok(http.get("/v1/predictions"))["results"], "the create to be stored")
        assert thread.is_alive(), "the create answered before SIGTERM: nothing was in flight"
        proc.send_signal(signal.SIGTERM)
        thread.join(15)
        assert not thread.is_alive(), "the waiting create never answered"
        # uvicorn re-raises the signal once it has shut down: "killed by SIGTERM", after the
        # answer went out.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    response = answer["response"]
    assert response.status_code == 201, response.text
    assert response.headers["preference-applied"] == "wait=5"
    body = response.json()
    assert body["status"] == "succeeded", body
    assert body["output"]


# ----------------------------------------------------------------------------- workers


def test_the_fixture_fails_without_redis_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without redis-server the Redis tests fail (never skip), saying how to get it."""
    monkeypatch.setattr(redis_server_module, "REDIS_SERVER", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerMissing, match="make test"):
        RedisServer.start(tmp_path / "redis")


def test_workers_need_a_shared_store(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "--port", "0", "--workers", "2"],
        cwd=PROJECT,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--store" in done.stderr


CLIENTS = 50
PER_CLIENT = 200
RUN_LIMIT_S = 120.0  # a slow or hung server fails the test instead of holding up the suite


def hammer(url: str) -> dict[str, Any]:
    """CLIENTS clients at once (a thread each, with its own keep-alive connection), each
    creating PER_CLIENT predictions one after another and polling each until it succeeds; every
    failure is collected, none stops the run."""
    over = threading.Event()  # set when the run is over RUN_LIMIT_S: the clients stop

    def one_client(n: int) -> tuple[str, list[str], list[str], int]:
        token = f"r8_load_{n}"
        ids: list[str] = []
        errors: list[str] = []
        requests = 0
        with Client(url, token) as http:
            for i in range(PER_CLIENT):
                if over.is_set():
                    errors.append(f"client {n}: stopped at {i}, over the run limit")
                    break
                try:
                    requests += 1
                    reply = http.request(
                        "POST",
                        f"{MODELS}/flux-schnell/predictions",
                        {"input": {"prompt": f"load {n} {i}"}},
                    )
                    if reply.status != 201:
                        errors.append(f"create {n}/{i}: {reply.status} {reply.body[:200]!r}")
                        continue
                    p = reply.json()
                    ids.append(p["id"])
                    deadline = time.monotonic() + WAIT_S
                    while p["status"] != "succeeded":
                        if p["status"] in TERMINAL or time.monotonic() > deadline:
                            errors.append(f"{p['id']} ended {p['status']}")
                            break
                        time.sleep(0.002)
                        requests += 1
                        reply = http.request("GET", f"/v1/predictions/{p['id']}")
                        if reply.status != 200:
                            errors.append(f"get {p['id']}: {reply.status} {reply.body[:200]!r}")
                            break
                        p = reply.json()
                except (OSError, HTTPException) as exc:  # the next request reconnects
                    errors.append(f"client {n}/{i}: {exc!r}")
        return token, ids, errors, requests

    started = time.monotonic()
    pool = ThreadPoolExecutor(CLIENTS, thread_name_prefix="load")
    futures = [pool.submit(one_client, n) for n in range(CLIENTS)]
    _, late = wait(futures, timeout=RUN_LIMIT_S)
    elapsed = time.monotonic() - started
    if late:
        over.set()
        pool.shutdown(wait=False, cancel_futures=True)
        pytest.fail(f"{len(late)} of {CLIENTS} clients still running after {RUN_LIMIT_S} s")
    pool.shutdown()
    results = [future.result() for future in futures]  # an unexpected exception raises here

    lists: dict[str, list[str]] = {}
    for token, *_ in results:
        with Client(url, token) as http:
            ids: list[str] = []
            path: str | None = "/v1/predictions"
            while path:
                reply = http.request("GET", path)
                assert reply.status == 200, (path, reply.status, reply.body[:500])
                page = reply.json()
                ids += [p["id"] for p in page["results"]]
                path = page["next"] and page["next"].removeprefix(url)
            lists[token] = ids
    return {
        "errors": [error for _, _, errors, _ in results for error in errors],
        "created": {token: ids for token, ids, _, _ in results},
        "lists": lists,
        "elapsed": elapsed,
        "requests": sum(requests for *_, requests in results),
    }


def test_two_workers_serve_10000_predictions_to_50_clients(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with spawned_server(
        *on_redis(redis_server, "--workers", "2", "--time-scale", "0.001"),
        log=tmp_path / "server.log",
    ) as (url, proc):
        result = hammer(url)
        health = admin(url, "GET", "/health")
        assert proc.poll() is None
    total = CLIENTS * PER_CLIENT
    print(  # noqa: T201
        f"\n2 workers on Redis: {total:,} predictions, {result['requests']:,} requests in "
        f"{result['elapsed']:.1f} s: {total / result['elapsed']:,.0f} creates/s, "
        f"{result['requests'] / result['elapsed']:,.0f} requests/s; "
        f"{len(result['errors'])} errors"
    )
    assert result["errors"] == [], result["errors"][:20]
    ids = [i for ids in result["created"].values() for i in ids]
    assert len(ids) == total, "every create answered"
    assert len(set(ids)) == total, "ids are unique"
    for token, mine in result["created"].items():
        assert sorted(result["lists"][token]) == sorted(mine), f"{token} lost predictions"
    assert (health["store"], health["predictions"]) == ("redis", total)
