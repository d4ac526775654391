"""The webhook schedule in Redis: every process's dispatcher looks at it, and each prediction's
due events are claimed by exactly one of them.

Keys (under connection.PREFIX): `wh:t:<id>` a track (JSON: where to, what was sent); `wh:due` a
sorted set of prediction ids by the clock time (epoch seconds) their next event is due (0: look
now); `wh:claim:<id>` held by the process handling it (it lapses after CLAIM_MS, so a process
that dies mid-way leaves it to another); `wh:attempts` the attempts, newest first.

A track is marked sent when claimed and queued for delivery in that process: an event due while
no server runs is delivered once by the first process to start; one queued in a process that is
killed before sending it is lost (Replicate too promises at-least-once only for `completed`'s
retries, which run in the process that claimed them).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from mock_server.models import Prediction
from mock_server.redis_store.connection import Keys, guarded, scan_delete
from mock_server.redis_store.records import attempt_from, attempt_json, track_from, track_json
from mock_server.webhooks.delivery import MAX_ATTEMPTS_KEPT, Attempt
from mock_server.webhooks.schedule import Due, Track, due_events

CLAIM_MS = 30_000
BATCH = 100
NEVER = 1e15  # a score for "only a change brings its next event" (the polls clock)

# KEYS: wh:due; ARGV: now (epoch s), claim key prefix, claimer, CLAIM_MS, track key prefix, BATCH
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[6]))
local out = {}
for _, id in ipairs(ids) do
  if redis.call('SET', ARGV[2] .. id, ARGV[3], 'NX', 'PX', tonumber(ARGV[4])) then
    local t = redis.call('GET', ARGV[5] .. id)
    if t then
      table.insert(out, t)
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('DEL', ARGV[2] .. id)
    end
  end
end
return out
"""


def _score(when: datetime) -> float:
    return when.timestamp()


class RedisAgenda:
    shared = True

    def __init__(self, client: Any, url: str, keys: Keys) -> None:
        self.client, self.url, self.key = client, url, keys
        self._claim = client.register_script(_CLAIM)
        self._me = f"{os.getpid()}-{id(self)}"

    def following(self) -> bool:
        return True  # other processes may add to it at any time

    @guarded
    async def follow(self, track: Track) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key("wh", "t", track.prediction_id), track_json(track))
            pipe.zadd(self.key("wh", "due"), {track.prediction_id: 0})
            await pipe.execute()

    @guarded
    async def mark(self, prediction_id: str | None = None) -> bool:
        if prediction_id is None:
            return True  # every process looks at the whole schedule on each pass anyway
        changed = await self.client.zadd(
            self.key("wh", "due"), {prediction_id: 0}, xx=True, ch=True
        )
        return bool(changed) or bool(await self.client.exists(self.key("wh", "t", prediction_id)))

    @guarded
    async def drop(self, prediction_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(self.key("wh", "t", prediction_id), self.key("wh", "claim", prediction_id))
            pipe.zrem(self.key("wh", "due"), prediction_id)
            await pipe.execute()

    @guarded
    async def clear(self, owner: str | None = None) -> None:
        if owner is None:
            await self.client.unlink(self.key("wh", "due"))
            await scan_delete(self.client, self.key("wh", "t", "*"), self.key("wh", "claim", "*"))
            return
        async for key in self.client.scan_iter(match=self.key("wh", "t", "*"), count=1000):
            raw = await self.client.get(key)
            if raw is not None and track_from(raw).owner == owner:
                await self.drop(track_from(raw).prediction_id)

    @guarded
    async def ready(self, now: datetime) -> list[Track]:
        found = await self._claim(
            keys=[self.key("wh", "due")],
            args=[
                _score(now),
                self.key("wh", "claim", ""),
                self._me,
                CLAIM_MS,
                self.key("wh", "t", ""),
                BATCH,
            ],
        )
        return [track_from(raw) for raw in found]

    @guarded
    async def advance(
        self, track: Track, p: Prediction, steps: int, moment: datetime, *, timed: bool
    ) -> list[Due]:
        found, due = due_events(track, p, steps, moment)
        pid = track.prediction_id
        async with self.client.pipeline(transaction=True) as pipe:
            if due is None:
                pipe.unlink(self.key("wh", "t", pid))
                pipe.zrem(self.key("wh", "due"), pid)
            else:
                pipe.set(self.key("wh", "t", pid), track_json(track))
                score = _score(due.at) if timed else NEVER
                pipe.zadd(self.key("wh", "due"), {pid: score})
            pipe.unlink(self.key("wh", "claim", pid))
            await pipe.execute()
        return found

    @guarded
    async def next_moment(self) -> datetime | None:
        first = await self.client.zrange(self.key("wh", "due"), 0, 0, withscores=True)
        if not first or first[0][1] >= NEVER:
            return None
        return datetime.fromtimestamp(first[0][1], UTC)


class RedisAttempts:
    def __init__(self, client: Any, url: str, keys: Keys) -> None:
        self.client, self.url, self.key = client, url, keys

    @guarded
    async def add(self, attempt: Attempt) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.key("wh", "attempts"), attempt_json(attempt))
            pipe.ltrim(self.key("wh", "attempts"), 0, MAX_ATTEMPTS_KEPT - 1)
            await pipe.execute()

    @guarded
    async def find(
        self, *, prediction_id: str | None = None, event: str | None = None, limit: int = 1000
    ) -> list[Attempt]:
        found: list[Attempt] = []
        for raw in await self.client.lrange(self.key("wh", "attempts"), 0, -1):
            a = attempt_from(raw)
            if prediction_id and a.prediction_id != prediction_id:
                continue
            if event and a.event != event:
                continue
            found.append(a)
            if len(found) >= limit:
                break
        return found

    @guarded
    async def clear(self, owner: str | None = None) -> None:
        key = self.key("wh", "attempts")
        if owner is None:
            await self.client.unlink(key)
            return
        kept = [r for r in await self.client.lrange(key, 0, -1) if attempt_from(r).owner != owner]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.unlink(key)
            if kept:
                pipe.rpush(key, *kept)
            await pipe.execute()
