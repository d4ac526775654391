"""Uploaded files (the Files API) in Redis, shared by every process.

Keys (under connection.PREFIX): `f:<id>` a hash (`meta` JSON, `data` the bytes); `fidx:<space>`
a sorted set of ids by upload order; `fseq` the counter; `focc` a hash of upload key -> count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mock_server.redis_store.connection import Keys, cursor_page, guarded, scan_delete
from mock_server.redis_store.records import file_from, file_meta
from mock_server.uploads import FilePage, StoredFile


class RedisFileStore:
    def __init__(self, client: Any, url: str, keys: Keys) -> None:
        self.client, self.url, self.key = client, url, keys

    @guarded
    async def next_occurrence(self, key: str) -> int:
        return int(await self.client.hincrby(self.key("focc"), key, 1)) - 1

    @guarded
    async def add(self, file: StoredFile) -> StoredFile:
        seq = int(await self.client.incr(self.key("fseq")))
        stored = StoredFile(
            file.id,
            file.owner,
            file.name,
            file.content_type,
            file.data,
            file.metadata,
            file.created_at,
            file.sha256,
            file.md5,
            seq,
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.key("f", stored.id), mapping={"meta": file_meta(stored), "data": file.data}
            )
            pipe.zadd(self.key("fidx", stored.owner), {stored.id: seq})
            await pipe.execute()
        return stored

    @guarded
    async def get(self, owner: str, file_id: str) -> StoredFile | None:
        meta, data = await self.client.hmget(self.key("f", file_id), "meta", "data")
        if meta is None or data is None:
            return None
        found = file_from(meta, data)
        return found if found.owner == owner else None

    @guarded
    async def delete(self, owner: str, file_id: str) -> bool:
        found = await self.get(owner, file_id)
        if found is None:
            return False
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(self.key("f", file_id))
            pipe.zrem(self.key("fidx", owner), file_id)
            await pipe.execute()
        return True

    @guarded
    async def count(self, owner: str) -> int:
        return int(await self.client.zcard(self.key("fidx", owner)))

    @guarded
    async def page(
        self, owner: str, *, before: int | None = None, after: int | None = None, limit: int = 100
    ) -> FilePage:
        ids, window = await cursor_page(self.client, self.key("fidx", owner), before, after, limit)
        async with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hmget(self.key("f", i.decode()), "meta", "data")
            rows: list[Any] = await pipe.execute()
        return FilePage(
            results=[file_from(m, d) for m, d in rows if m is not None and d is not None],
            next_before=window.next_before,
            previous_after=window.previous_after,
        )

    @guarded
    async def purge(self, owner: str, now: datetime) -> None:
        ids = await self.client.zrange(self.key("fidx", owner), 0, -1)
        if not ids:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(self.key("f", i.decode()), "meta")
            metas = await pipe.execute()
        for meta in metas:
            if meta is not None:
                f = file_from(meta, b"")
                if f.expires_at <= now:
                    await self.delete(owner, f.id)

    @guarded
    async def reset(self, owner: str | None = None) -> None:
        k = self.key
        if owner is None:
            await self.client.unlink(k("fseq"), k("focc"))
            await scan_delete(self.client, k("f", "*"), k("fidx", "*"))
            return
        ids = await self.client.zrange(k("fidx", owner), 0, -1)
        async with self.client.pipeline(transaction=True) as pipe:
            for i in ids:
                pipe.unlink(k("f", i.decode()))
            pipe.unlink(k("fidx", owner))
            await pipe.execute()
        mine = [f async for f in self.client.hscan_iter(k("focc"), match=f"{owner}:*")]
        if mine:
            await self.client.hdel(k("focc"), *[field for field, _ in mine])
