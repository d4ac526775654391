"""The request journal in Redis: one list for every process, newest last, bounded.

The middleware appends without waiting on Redis (a request must not pay a round trip for its
own log line): entries queue in this process and one task writes them in batches. A read
(`find`) writes what is queued here first; another process's last entries follow within a few
milliseconds. While Redis is away, entries are dropped (and the drop logged), never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mock_server.journal import Entry, find
from mock_server.redis_store.connection import DOWN, Keys, guarded
from mock_server.redis_store.records import entry_from, entry_json

log = logging.getLogger("mock_server.journal")
MAX_QUEUED = 10_000


class RedisJournal:
    def __init__(self, client: Any, url: str, keys: Keys, limit: int = 10_000) -> None:
        self.client, self.url, self.key, self.limit = client, url, keys, limit
        self._queued: list[Entry] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    def append(self, entry: Entry) -> None:
        if len(self._queued) >= MAX_QUEUED:
            return
        self._queued.append(entry)
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_on())
        assert self._wake is not None
        self._wake.set()

    async def _write_on(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            try:
                await self.flush()
            except DOWN as exc:
                log.warning("journal entries dropped, Redis does not answer: %s", exc)

    async def flush(self) -> None:
        async with self._writing:
            batch, self._queued = self._queued, []
            if not batch:
                return
            last = int(await self.client.incrby(self.key("jseq"), len(batch)))
            for n, entry in enumerate(batch):
                entry.seq = last - len(batch) + 1 + n
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(self.key("journal"), *[entry_json(e) for e in batch])
                pipe.ltrim(self.key("journal"), -self.limit, -1)
                await pipe.execute()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        with contextlib.suppress(*DOWN):
            await self.flush()

    @guarded
    async def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[Entry]:
        await self.flush()
        entries = [entry_from(raw) for raw in await self.client.lrange(self.key("journal"), 0, -1)]
        return find(entries, method=method, path=path, model=model, status=status, limit=limit)

    @guarded
    async def clear(self, owner: str | None = None) -> None:
        await self.flush()
        if owner is None:
            await self.client.unlink(self.key("journal"))
            return
        raw = await self.client.lrange(self.key("journal"), 0, -1)
        kept = [r for r in raw if entry_from(r).owner != owner]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(self.key("journal"))
            if kept:
                pipe.rpush(self.key("journal"), *kept)
            await pipe.execute()
