"""Soak: 100,000 creates over HTTP against one memory-store process that keeps at most 10,000
predictions. Its memory must level off once the store (and the journal) are full, the newest
predictions must stay readable and the oldest must be gone.

The requests go through `Client`: the standard library's http.client, one keep-alive connection
per thread. On the 2-core machines this runs on, httpx costs about 3 ms of client CPU per
request (one connection: ~300 creates/s), which would make the run several minutes long and
measure the client rather than the server; http.client costs about 0.3 ms, less than the
server's ~0.45 ms per create.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPMessage
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.conftest import TOKEN, spawned_server

CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"
MAX_PREDICTIONS = 10_000
TOTAL = 100_000
PHASE = 10_000  # creates between two RSS samples
CONNECTIONS = 8
EDGE = 100  # the oldest and the newest EDGE creates are sent one at a time, in order
REQUEST_TIMEOUT_S = 30.0
# Once the store holds MAX_PREDICTIONS and the journal its 10,000 entries (both full after 10k
# creates), nothing the server keeps should grow: the baseline is the RSS after 20k creates, when
# both have been through a full turn of evictions. Measured on a 2-core machine: with every
# per-request structure bounded, RSS moved 0.7 MB between 20k and 100k creates (allocator noise);
# with one dict entry per distinct request kept forever (~150 bytes each) it grew 11.6 MB. The
# bound, 4 MB over the 80,000 creates after the baseline, is ~50 bytes per create: less than any
# Python object kept per request, five times the noise. A store that did not evict at all would
# add hundreds of MB.
GROWTH_LIMIT_KB = 4 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: HTTPMessage
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Client:
    """One keep-alive HTTP/1.1 connection (http.client.HTTPConnection, which reopens it after
    the server closes it) sending the bearer token and JSON bodies. Not safe for concurrent use:
    give each thread its own."""

    def __init__(
        self, base_url: str, token: str | None = TOKEN, timeout: float = REQUEST_TIMEOUT_S
    ) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None, base_url
        assert parts.port is not None, base_url
        self.connection = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self.json_headers = {**self.headers, "Content-Type": "application/json"}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def request(self, method: str, path: str, json: Any = None) -> Reply:
        """The whole answer; on any failure the connection is closed (the next request opens
        a new one) and the error raised."""
        body = None if json is None else orjson.dumps(json)
        try:
            self.connection.request(
                method, path, body, self.headers if json is None else self.json_headers
            )
            with self.connection.getresponse() as response:
                return Reply(response.status, response.headers, response.read())
        except BaseException:
            self.close()
            raise


class PerThread:
    """A `Client` for each thread that asks (threading.local), all closed by `close()`."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.local = threading.local()
        self.opened: list[Client] = []
        self.lock = threading.Lock()

    def client(self) -> Client:
        client: Client | None = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = Client(self.base_url)
            with self.lock:
                self.opened.append(client)
        return client

    def close(self) -> None:
        with self.lock:
            for client in self.opened:
                client.close()
            self.opened.clear()


def rss_kb(pid: int) -> int:
    """The process's resident set size (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def prompt(n: int) -> dict[str, Any]:
    return {"input": {"prompt": f"soak {n}", "seed": n}}


def create_one(client: Client, n: int) -> str:
    reply = client.request("POST", CREATE, prompt(n))
    assert reply.status == 201, (n, reply.status, reply.body[:500])
    prediction_id: str = reply.json()["id"]
    return prediction_id


def soak(url: str, pid: int) -> dict[str, Any]:
    with Client(url) as client:
        oldest = [create_one(client, n) for n in range(EDGE)]
    samples: dict[int, int] = {}
    created = EDGE
    clients = PerThread(url)

    def create(n: int) -> str:
        return create_one(clients.client(), n)

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="soak") as pool:
            while created < TOTAL - EDGE:
                stop = min(created + PHASE - (EDGE if created == EDGE else 0), TOTAL - EDGE)
                # Each number goes to one of the CONNECTIONS threads; a failed create raises here.
                created += sum(1 for _ in pool.map(create, range(created, stop)))
                samples[created] = rss_kb(pid)
    finally:
        clients.close()
    with Client(url) as client:
        newest = [create_one(client, n) for n in range(created, TOTAL)]
        elapsed = time.monotonic() - started
        samples[TOTAL] = rss_kb(pid)
        gets = [client.request("GET", f"/v1/predictions/{p}").status for p in newest]
        gone = [client.request("GET", f"/v1/predictions/{p}").status for p in oldest]
        listed = client.request("GET", "/v1/predictions").json()["results"]
        health = client.request("GET", "/__admin/health").json()
    return {
        "samples": samples,
        "elapsed": elapsed,
        "newest": newest,
        "newest_status": gets,
        "oldest_status": gone,
        "listed": [p["id"] for p in listed],
        "health": health,
    }


def test_memory_levels_off_and_the_oldest_are_evicted(tmp_path: Path) -> None:
    # --time-scale 0: every prediction is finished at once, so eviction (oldest finished first)
    # goes in creation order.
    args = ("--time-scale", "0", "--max-predictions", str(MAX_PREDICTIONS))
    with spawned_server(*args, log=tmp_path / "server.log") as (url, proc):
        start_kb = rss_kb(proc.pid)
        result = soak(url, proc.pid)
        assert proc.poll() is None, "the server died during the soak"
    samples: dict[int, int] = result["samples"]
    rate = (TOTAL - EDGE) / result["elapsed"]
    figures = ", ".join(f"{n // 1000}k: {kb / 1024:.1f}" for n, kb in sorted(samples.items()))
    print(  # noqa: T201
        f"\nsoak: {TOTAL:,} creates, {rate:,.0f} creates/s over {CONNECTIONS} connections; "
        f"RSS (MB) at start: {start_kb / 1024:.1f}, {figures}"
    )

    assert result["health"]["predictions"] == MAX_PREDICTIONS
    assert result["newest_status"] == [200] * EDGE, "the newest predictions must be readable"
    assert result["oldest_status"] == [404] * EDGE, "the oldest predictions must be evicted"
    assert result["listed"] == result["newest"][::-1], "the list's first page: newest first"

    baseline_at = min(n for n in samples if n >= 2 * PHASE)
    baseline, final = samples[baseline_at], samples[TOTAL]
    limit = baseline + GROWTH_LIMIT_KB
    assert final <= limit, (
        f"RSS grew from {baseline / 1024:.1f} MB after {baseline_at:,} creates to "
        f"{final / 1024:.1f} MB after {TOTAL:,} (limit {limit / 1024:.1f} MB): "
        f"something the server keeps per request is not bounded ({figures})"
    )
