"""What every process must agree on besides the records: resets (and the seed, clock mode and
time scale they set), the manual clock's time, and the run-time scenarios with the `times`
each has left.

`control` is one small hash (`epoch`, `settings`, `clock`, `scen`); each request reads it (one
round trip) and catches up when it changed, so a change made through one process applies to
the next request on any other. A message on the `events` channel wakes the processes' waiters
(a sync-mode create, the webhook dispatcher) when the manual clock moves elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from mock_server.clock import ManualClock
from mock_server.redis_store.connection import DOWN, Keys, SharedRead, guarded, scan_delete
from mock_server.scenarios import Scenario
from mock_server.timeline import ClockMode

if TYPE_CHECKING:
    from mock_server.context import AppContext

log = logging.getLogger("mock_server.redis")
SHARED_SETTINGS = ("seed", "clock", "time_scale", "output_urls")  # what a reset may change
TOMBSTONE = b""  # a file or built-in rule removed at run time
# KEYS: scen:used; ARGV: name, times. One more use of a rule, if it has any left.
_SPEND = """
local used = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return used <= tonumber(ARGV[2]) and 1 or 0
"""


class SharedControl:
    def __init__(self, client: Any, url: str, keys: Keys) -> None:
        self.client, self.url, self.key = client, url, keys
        self._seen: dict[bytes, bytes] | None = None
        self._seen_before: dict[bytes, bytes] | None = None  # what the last catch-up saw
        self._epoch = 0  # the last reset this process applied
        self._times: dict[str, int] = {}  # each rule's `times` as added
        self._spend = client.register_script(_SPEND)
        self._listener: asyncio.Task[None] | None = None
        self._reads = 0  # reads of the control hash started, in order
        self._applied = 0  # the newest read caught up with
        self._read = SharedRead(self._numbered_read)
        self._catching_up = asyncio.Lock()

    # ------------------------------------------------------------------ catching up

    @guarded
    async def sync(self, ctx: AppContext, *, fresh: bool = False) -> None:
        number, seen = await self._read()  # one round trip for all who ask at once
        if seen == self._seen and not fresh and not self._catching_up.locked():
            return
        async with self._catching_up:  # one at a time, and never back to an older read
            if fresh:
                number, seen = await self._numbered_read()
            if number > self._applied and (seen != self._seen or fresh):
                await self._catch_up(ctx, seen)
            self._applied = max(self._applied, number)

    async def _numbered_read(self) -> tuple[int, dict[bytes, bytes]]:
        self._reads += 1
        number = self._reads
        return number, await self.client.hgetall(self.key("control"))

    async def _catch_up(self, ctx: AppContext, seen: dict[bytes, bytes]) -> None:
        if self._seen is None:
            await self._first(ctx, seen)
            seen = await self.client.hgetall(self.key("control"))
        epoch = int(seen.get(b"epoch", 0))
        if self._seen_before is not None and seen.get(b"gen") != self._seen_before.get(b"gen"):
            ctx.forget_kept()  # a per-token reset elsewhere: its ids start over
        self._seen_before = seen
        if epoch != self._epoch:
            self._epoch = epoch
            shared = orjson.loads(seen.get(b"settings", b"{}"))
            settings = replace(ctx.settings, **shared)
            new_clock = settings.clock != ctx.settings.clock
            ctx.apply_reset(settings, new_clock=new_clock)
        clock = seen.get(b"clock")
        if clock is not None and isinstance(ctx.clock, ManualClock):
            when = datetime.fromisoformat(clock.decode())
            if when != ctx.clock.now():
                ctx.clock.set(when)
        await self._load_scenarios(ctx)
        self._seen = seen  # last: a request that finds it caught up finds everything applied

    async def _first(self, ctx: AppContext, seen: dict[bytes, bytes]) -> None:
        """This process's first look: its settings and clock join what is shared (the first
        process to start sets them); rules from the --scenarios file keep their `times`."""
        self._epoch = int(seen.get(b"epoch", 0))
        for rule in ctx.scenarios.rules.values():
            if rule.times is not None:
                self._times[rule.name] = rule.times
        if b"settings" in seen:
            shared = orjson.loads(seen[b"settings"])
            settings = replace(ctx.settings, **shared)
            if settings != ctx.settings:
                log.warning(
                    "the shared store already holds %s (an earlier process or reset set them); "
                    "this process uses them",
                    ", ".join(f"{k}={v!r}" for k, v in shared.items()),
                )
                ctx.apply_reset(settings, new_clock=settings.clock != ctx.settings.clock)
        else:
            await self.client.hsetnx(self.key("control"), "settings", self._settings(ctx))
        if isinstance(ctx.clock, ManualClock):
            await self.client.hsetnx(self.key("control"), "clock", ctx.clock.now().isoformat())

    async def _load_scenarios(self, ctx: AppContext) -> None:
        rules = await self.client.hgetall(self.key("scen"))
        order = await self.client.zrange(self.key("scen", "order"), 0, -1)
        used = await self.client.hgetall(self.key("scen", "used"))
        ctx.scenarios.reset()  # the built-ins and the file's rules
        for raw_name in order:
            raw = rules.get(raw_name)
            name = raw_name.decode()
            if raw is None:
                continue
            if raw == TOMBSTONE:
                ctx.scenarios.remove(name)
                continue
            rule = Scenario.from_dict(orjson.loads(raw))
            ctx.scenarios.add(rule)
        for rule in ctx.scenarios.rules.values():
            if rule.times is not None:
                self._times.setdefault(rule.name, rule.times)
                spent = int(used.get(rule.name.encode(), 0))
                rule.times = max(0, self._times[rule.name] - spent)
        ctx.scenarios.refresh()

    def _settings(self, ctx: AppContext) -> bytes:
        return orjson.dumps({name: getattr(ctx.settings, name) for name in SHARED_SETTINGS})

    # ------------------------------------------------------------------ changes

    @guarded
    async def reset(self, ctx: AppContext, changes: dict[str, object]) -> None:
        """A full reset made through this process: every other one follows on its next request."""
        settings = replace(ctx.settings, **changes)  # type: ignore[arg-type]
        shared = {name: getattr(settings, name) for name in SHARED_SETTINGS}
        await scan_delete(self.client, self.key("scen", "*"))
        await self.client.unlink(self.key("scen"))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.key("control"), "epoch", 1)
            pipe.hset(self.key("control"), "settings", orjson.dumps(shared))
            pipe.hincrby(self.key("control"), "scen", 1)
            if ClockMode(settings.clock) is ClockMode.MANUAL:
                # The new manual clock starts at the real time (timeline.clock_for).
                pipe.hdel(self.key("control"), "clock")
            epoch, *_ = await pipe.execute()
        self._epoch = int(epoch)  # this process applies it itself
        self._times = {}
        self._seen = None  # re-read everything on the next request
        await self._publish()

    @guarded
    async def forgotten(self, owner: str) -> None:
        """A per-token reset made through this process: the others drop their copies."""
        await self.client.hincrby(self.key("control"), "gen", 1)
        await self._publish()

    @guarded
    async def set_clock(self, now: datetime) -> None:
        await self.client.hset(self.key("control"), "clock", now.isoformat())
        await self._publish()

    @guarded
    async def put_scenario(self, scenario: Scenario) -> None:
        name = scenario.name
        if scenario.times is not None:
            self._times[name] = scenario.times
        else:
            self._times.pop(name, None)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("scen"), name, orjson.dumps(_rule_json(scenario)))
            pipe.zadd(self.key("scen", "order"), {name: await self._next_order()}, nx=True)
            pipe.hdel(self.key("scen", "used"), name)
            pipe.hincrby(self.key("control"), "scen", 1)
            await pipe.execute()

    @guarded
    async def drop_scenario(self, name: str) -> bool:
        """Remove a rule for every process; True if it existed as a run-time rule."""
        existed = await self.client.hget(self.key("scen"), name)
        async with self.client.pipeline(transaction=True) as pipe:
            # A file or built-in rule stays removed until the next reset (a tombstone).
            pipe.hset(self.key("scen"), name, TOMBSTONE)
            pipe.zadd(self.key("scen", "order"), {name: await self._next_order()}, nx=True)
            pipe.hdel(self.key("scen", "used"), name)
            pipe.hincrby(self.key("control"), "scen", 1)
            await pipe.execute()
        return existed not in (None, TOMBSTONE)

    async def _next_order(self) -> int:
        return int(await self.client.incr(self.key("scen", "counter")))

    @guarded
    async def spend(self, rule: Scenario) -> bool:
        """One use of a rule with `times`, counted across every process."""
        times = self._times.get(rule.name, rule.times)
        if times is None:
            return True
        ok = await self._spend(keys=[self.key("scen", "used")], args=[rule.name, times])
        if not ok:
            rule.times = 0
        return bool(ok)

    # ------------------------------------------------------------------ waking other processes

    async def _publish(self) -> None:
        await self.client.publish(self.key("events"), b"changed")

    def listen(self, ctx: AppContext) -> None:
        """Follow the `events` channel (on the running loop): catch up when another process
        moves the manual clock, so waiters here wake without a request coming in."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(ctx))

    async def _listen(self, ctx: AppContext) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.key("events"))
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None:
                            await self.sync(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: try again shortly
                if not isinstance(exc, DOWN):
                    log.warning("the events channel failed: %s", exc)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener


def _rule_json(rule: Scenario) -> dict[str, Any]:
    data = rule.to_json()
    data.pop("builtin", None)
    return {k: v for k, v in data.items() if v is not None}
