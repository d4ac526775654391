"""Predictions in Redis, shared by every process (`--store redis://...`).

Keys (under connection.PREFIX): `p:<id>` a hash (`d` fixed JSON, `m` mutable JSON, `s` seq,
`o` owner); `all` and `idx:<owner>` sorted sets of ids by seq (creation order); `seq` the
counter; `occ:<owner>` a hash of request key -> creates so far (for stable ids). A create is one
Lua script, so a record is never half written whatever happens to the connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from mock_server.models import Prediction
from mock_server.paging import Slice, window_slice
from mock_server.redis_store.connection import (
    Keys,
    Pipelined,
    cursor_page,
    guarded,
    scan_delete,
)
from mock_server.redis_store.records import mutable_part, prediction_from, prediction_parts
from mock_server.store import Page

# Adds a record. KEYS: seq, all, idx:<owner>, p:<id>; ARGV: id, d, m, owner, max_predictions,
# key prefix. Past the limit the oldest records go (Redis has no clock to tell the finished ones).
_ADD_BODY = """
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[4], 'd', ARGV[2], 'm', ARGV[3], 's', seq, 'o', ARGV[4])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do
    local rec = ARGV[6] .. 'p:' .. old[i]
    local owner = redis.call('HGET', rec, 'o')
    redis.call('DEL', rec)
    if owner then redis.call('ZREM', ARGV[6] .. 'idx:' .. owner, old[i]) end
  end
end
"""
_ADD = _ADD_BODY + "return seq\n"
# A create: the record is added only if its id was made for the occurrence that is next for its
# request key. KEYS: as _ADD, then occ:<owner>; ARGV: as _ADD, then the key, the occurrence.
# Returns {1, seq} once added, else {0, the next occurrence}.
_CREATE = (
    """
local next = tonumber(redis.call('HGET', KEYS[5], ARGV[7]) or '0')
if next ~= tonumber(ARGV[8]) then return {0, next} end
redis.call('HSET', KEYS[5], ARGV[7], next + 1)
"""
    + _ADD_BODY
    + "return {1, seq}\n"
)
# KEYS: p:<id>; ARGV: m. Only a record that still exists is written back.
_SAVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'm', ARGV[1]) end
return 0
"""


FINISHED_KEPT = 10_000  # finished records this process keeps (they never change)
GUESSES_KEPT = 10_000  # request keys whose next occurrence this process remembers
GUESSES = 8  # tries of a create before it counts with a round trip of its own


class RedisStore:
    """Finished records are also kept in this process (bounded): a finished prediction never
    changes, so polling one costs no round trip for the record. A reset anywhere empties that
    (SharedControl tells every process)."""

    kind = "redis"

    def __init__(self, client: Any, url: str, max_predictions: int, keys: Keys) -> None:
        self.client, self.url, self.max_predictions, self.key = client, url, max_predictions, keys
        # Which records are finished (set by the context, from the clock); Redis evicts oldest.
        self.finished: Callable[[Prediction], bool] = lambda p: False
        self._add = client.register_script(_ADD)
        self._create = client.register_script(_CREATE)
        self._pipelined = Pipelined(client)  # creates and reads of records
        # The next occurrence of the request keys this process created lately, counted here as
        # creates start: a create is one (shared) round trip when no other process took it.
        self._next: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._save = client.register_script(_SAVE)
        self._kept: OrderedDict[str, Prediction] = OrderedDict()

    def forget_kept(self) -> None:
        self._kept.clear()
        self._next.clear()

    @guarded
    async def next_occurrence(self, owner: str, key: str) -> int:
        return int(await self.client.hincrby(self.key("occ", owner), key, 1)) - 1

    @guarded
    async def add(self, prediction: Prediction) -> Prediction:
        fixed, mutable = prediction_parts(prediction)
        k = self.key
        seq = await self._add(
            keys=[k("seq"), k("all"), k("idx", prediction.owner), k("p", prediction.id)],
            args=[prediction.id, fixed, mutable, prediction.owner, self.max_predictions, k("")],
        )
        prediction.seq = int(seq)
        return prediction

    @guarded
    async def create(self, owner: str, key: str, build: Callable[[int], Prediction]) -> Prediction:
        k = self.key
        for _ in range(GUESSES):
            occurrence = self._guess(owner, key)
            p = build(occurrence)
            fixed, mutable = prediction_parts(p)
            keys = [k("seq"), k("all"), k("idx", owner), k("p", p.id), k("occ", owner)]
            args = [p.id, fixed, mutable, owner, self.max_predictions, k(""), key, occurrence]
            # The script's call with the pipeline as its client queues it there.
            added, value = await self._pipelined(partial(self._create, keys, args))
            if added:
                p.seq = int(value)
                return p
            # Another process took it (the real next is further on), or a create of this
            # process failed on the way (it is back): count from the real next.
            real = int(value)
            mine = self._next.get((owner, key), real)
            self._next[owner, key] = max(mine, real) if real > occurrence else real
        # Many processes creating the same request at once: count first, then add.
        p = build(await self.next_occurrence(owner, key))
        return await self.add(p)

    def _guess(self, owner: str, key: str) -> int:
        """This key's next occurrence as this process counts it, counted as taken."""
        occurrence = self._next.pop((owner, key), 0)
        self._next[owner, key] = occurrence + 1  # now the most recently used
        if len(self._next) > GUESSES_KEPT:
            self._next.popitem(last=False)
        return occurrence

    @guarded
    async def get(self, prediction_id: str) -> Prediction | None:
        kept = self._kept.get(prediction_id)
        if kept is not None:
            self._kept.move_to_end(prediction_id)
            return kept
        record = self.key("p", prediction_id)

        async def queue(pipe: Any) -> None:
            pipe.hmget(record, "d", "m", "s")

        fixed, mutable, seq = await self._pipelined(queue)
        if fixed is None or mutable is None or seq is None:
            return None
        p = prediction_from(fixed, mutable, seq)
        if self.finished(p):
            self._kept[p.id] = p
            if len(self._kept) > FINISHED_KEPT:
                self._kept.popitem(last=False)
        return p

    @guarded
    async def save(self, prediction: Prediction) -> None:
        self._kept.pop(prediction.id, None)
        await self._save(keys=[self.key("p", prediction.id)], args=[mutable_part(prediction)])

    @guarded
    async def count(self) -> int:
        return int(await self.client.zcard(self.key("all")))

    @guarded
    async def reset(self, owner: str | None = None) -> None:
        k = self.key
        self.forget_kept()
        if owner is None:
            await self.client.unlink(k("all"), k("seq"))
            await scan_delete(self.client, k("p", "*"), k("idx", "*"), k("occ", "*"))
            return
        ids = await self.client.zrange(k("idx", owner), 0, -1)
        async with self.client.pipeline(transaction=True) as pipe:
            for chunk in _chunks(ids, 1000):
                pipe.unlink(*[k("p", i.decode()) for i in chunk])
                pipe.zrem(k("all"), *chunk)
            pipe.unlink(k("idx", owner), k("occ", owner))
            await pipe.execute()

    @guarded
    async def page(
        self,
        owner: str | None,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 100,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        index = self.key("all") if owner is None else self.key("idx", owner)
        if created_after is not None or created_before is not None:
            window = await self._window(index, before, after, limit, created_after, created_before)
            return await self._records(window)
        ids, window = await cursor_page(self.client, index, before, after, limit)
        return await self._records(window, ids)

    async def _window(
        self,
        index: str,
        before: int | None,
        after: int | None,
        limit: int,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> Slice:
        """The whole index and every creation time, then the memory store's walk: a time window
        is a rare, admin-sized query."""
        found = await self.client.zrange(index, 0, -1, withscores=True)
        ids = [i for i, _ in found]
        seqs = [int(s) for _, s in found]
        created: dict[int, datetime] = {}
        async with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(self.key("p", i.decode()), "d")
            for seq, fixed in zip(seqs, await pipe.execute(), strict=True):
                if fixed is not None:
                    created[seq] = _created_at(fixed)
        alive = [s for s in seqs if s in created]
        return window_slice(
            alive, created.__getitem__, before, after, limit, created_after, created_before
        )

    async def _records(self, window: Slice, ids: Sequence[bytes] | None = None) -> Page:
        if ids is None:
            by_seq = await self._ids_of(window.seqs)
            ids = [by_seq[s] for s in window.seqs if s in by_seq]
        async with self.client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hmget(self.key("p", i.decode()), "d", "m", "s")
            rows: list[Any] = await pipe.execute()
        results = [prediction_from(d, m, s) for d, m, s in rows if d is not None]
        return Page(results, window.next_before, window.previous_after)

    async def _ids_of(self, seqs: list[int]) -> dict[int, bytes]:
        async with self.client.pipeline(transaction=False) as pipe:
            for s in seqs:
                pipe.zrangebyscore(self.key("all"), s, s)
            found = await pipe.execute()
        return {s: hit[0] for s, hit in zip(seqs, found, strict=True) if hit}


def _created_at(fixed: bytes) -> datetime:
    return datetime.fromisoformat(orjson.loads(fixed)["created_at"])


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
