"""Soak: 100,000 creates over HTTP against one memory-store process that keeps at most 10,000
predictions. Its memory must level off once the store (and the journal) are full, the newest
predictions must stay readable and the oldest must be gone.

The requests go through `RawClient`, a minimal HTTP/1.1 keep-alive client on asyncio streams:
on the 2-core machines this runs on, httpx costs about 3 ms of client CPU per request (one
connection: ~300 creates/s against ~1,500/s for the raw client), which would make the run
several minutes long and measure the client rather than the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
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
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class RawClient:
    """HTTP/1.1 over one keep-alive connection (reopened if the server closes it): enough for
    the emulator's JSON answers (Content-Length or chunked bodies). Not safe for concurrent use:
    give each task its own."""

    def __init__(self, base_url: str, token: str | None = TOKEN) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None, base_url
        assert parts.port is not None, base_url
        self.host, self.port = parts.hostname, parts.port
        self.fixed = f"Host: {self.host}:{self.port}\r\n"
        if token is not None:
            self.fixed += f"Authorization: Bearer {token}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> Reply:
        body = b"" if json is None else orjson.dumps(json)
        head = f"{method} {path} HTTP/1.1\r\n{self.fixed}"
        if json is not None:
            head += "Content-Type: application/json\r\n"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body)}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        data = (head + "\r\n").encode("latin-1") + body
        async with asyncio.timeout(timeout):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None
            self._writer.write(data)
            reply = await self._read(self._reader)
        if reply.headers.get("connection", "").lower() == "close":
            await self.close()
        return reply

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Reply:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the (empty) trailer
            body = b"".join(chunks)
        else:
            body = b""
        return Reply(status, headers, body)


def rss_kb(pid: int) -> int:
    """The process's resident set size (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def prompt(n: int) -> dict[str, Any]:
    return {"input": {"prompt": f"soak {n}", "seed": n}}


async def create_one(client: RawClient, n: int) -> str:
    reply = await client.request("POST", CREATE, prompt(n))
    assert reply.status == 201, (n, reply.status, reply.body[:500])
    prediction_id: str = reply.json()["id"]
    return prediction_id


async def create_range(url: str, numbers: Iterator[int], connections: int) -> int:
    """Create one prediction for each number, `connections` at a time; returns how many."""
    done = 0

    async def worker() -> None:
        nonlocal done
        async with RawClient(url) as client:
            for n in numbers:  # a shared iterator: each number goes to one worker
                await create_one(client, n)
                done += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return done


async def soak(url: str, pid: int) -> dict[str, Any]:
    async with RawClient(url) as client:
        oldest = [await create_one(client, n) for n in range(EDGE)]
    samples: dict[int, int] = {}
    created = EDGE
    started = time.monotonic()
    while created < TOTAL - EDGE:
        stop = min(created + PHASE - (EDGE if created == EDGE else 0), TOTAL - EDGE)
        created += await create_range(url, iter(range(created, stop)), CONNECTIONS)
        samples[created] = rss_kb(pid)
    async with RawClient(url) as client:
        newest = [await create_one(client, n) for n in range(created, TOTAL)]
        elapsed = time.monotonic() - started
        samples[TOTAL] = rss_kb(pid)
        gets = [(await client.request("GET", f"/v1/predictions/{p}")).status for p in newest]
        gone = [(await client.request("GET", f"/v1/predictions/{p}")).status for p in oldest]
        listed = (await client.request("GET", "/v1/predictions")).json()["results"]
        health = (await client.request("GET", "/__admin/health")).json()
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
        result = asyncio.run(soak(url, proc.pid))
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
