"""Delivering webhooks: one dispatcher per app, started on the running event loop when the first
webhook is scheduled, and gone again once nothing is left to send.

It sleeps on the injected clock until the next event is due (advancing a ManualClock delivers
what became due, in order), renders the prediction as a GET shows it at that moment, and POSTs
it signed through one shared httpx client: never inside the API request that scheduled it, at
most 16 at once, each prediction's events one after the other. Only `completed` is retried.
Every attempt is recorded for `/__admin/webhooks`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from mock_server import __version__
from mock_server.clock import Clock, SystemClock, real_seconds
from mock_server.errors import StoreUnavailable
from mock_server.fixtures import ModelFixture
from mock_server.lifecycle import State, state_at
from mock_server.logs import step_count
from mock_server.models import Prediction
from mock_server.timeline import ClockMode
from mock_server.views import prediction_json, timestamp
from mock_server.webhooks.schedule import Agenda, AgendaLike, Due, Track, retry_delay
from mock_server.webhooks.signing import default_secret, message_id, signed_headers

if TYPE_CHECKING:
    from mock_server.context import AppContext

log = logging.getLogger("mock_server.webhooks")

CONCURRENCY = 16  # deliveries in flight at once
MAX_QUEUED = 10_000  # deliveries waiting; past it the oldest non-`completed` one is dropped
MAX_ATTEMPTS_KEPT = 10_000  # attempts /__admin/webhooks can show
TIMEOUT_S = 5.0  # per attempt: connect, write, read ("a 2xx within a few seconds")
LOOK_AGAIN_S = 3600.0  # the longest one wait lasts (real seconds) before it looks again
# With a shared schedule, other processes add to it (and a restart leaves work in it): look at
# least this often (real seconds).
SHARED_LOOK_S = 0.2
USER_AGENT = f"mock-server-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as /__admin/webhooks shows it."""

    at: datetime  # real time, whatever the server's clock
    prediction_id: str
    event: str
    url: str
    attempt: int
    status: int | None  # the receiver's HTTP status; None: no answer
    latency_ms: float
    error: str | None
    webhook_id: str
    owner: str = ""  # whose prediction (a per-token reset forgets its attempts); not shown

    def to_json(self) -> dict[str, Any]:
        return {
            "at": timestamp(self.at),
            "prediction_id": self.prediction_id,
            "event": self.event,
            "url": self.url,
            "attempt": self.attempt,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
            "webhook_id": self.webhook_id,
        }


@dataclass(slots=True)
class Delivery:
    """One event of one prediction: its state at the event's moment, rendered when sent."""

    seq: int
    track: Track
    event: str
    webhook_id: str
    p: Prediction
    moment: State
    fixture: ModelFixture
    state: str = "queued"  # queued | sending | dropped
    body: bytes = b""  # rendered before the first attempt; every retry sends the same


class _Runner:
    """What belongs to one event loop: the dispatcher's task and wake-up, the HTTP client, the
    concurrency limit, and each prediction's queue of deliveries."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wake = asyncio.Event()
        # No proxies from the environment and no redirects: deliveries go where the URL says.
        self.client = httpx.AsyncClient(
            timeout=TIMEOUT_S,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=CONCURRENCY),
        )
        self.limit = asyncio.Semaphore(CONCURRENCY)
        self.lanes: dict[str, deque[Delivery]] = {}
        self.droppable: OrderedDict[int, Delivery] = OrderedDict()  # queued, not `completed`
        self.queued = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.main: asyncio.Task[None] | None = None
        self.look_again = False  # look at every followed prediction on the next pass

    def stop(self) -> None:
        """Cancel everything running on this loop, from any thread."""
        if self.loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        for task in [self.main, *self.tasks]:
            if task is not None and not task.done():
                if here:
                    task.cancel()
                else:
                    self.loop.call_soon_threadsafe(task.cancel)

    async def sleep(self, clock: Clock, until: datetime | None, most: float | None) -> None:
        """Until woken, until the clock reaches `until`, or `most` real seconds."""
        waiters: list[asyncio.Task[Any]] = [self.loop.create_task(self.wake.wait())]
        if until is not None:
            waiters.append(self.loop.create_task(clock.sleep_until(until, limit=LOOK_AGAIN_S)))
        if most is not None:
            waiters.append(self.loop.create_task(asyncio.sleep(most)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


class AttemptLog(Protocol):
    """Where attempts are recorded: this process (MemoryAttempts) or the shared store."""

    async def add(self, attempt: Attempt) -> None: ...

    async def find(
        self, *, prediction_id: str | None = None, event: str | None = None, limit: int = 1000
    ) -> list[Attempt]: ...

    async def clear(self, owner: str | None = None) -> None: ...


class MemoryAttempts:
    def __init__(self) -> None:
        self.attempts: deque[Attempt] = deque(maxlen=MAX_ATTEMPTS_KEPT)

    async def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    async def find(
        self, *, prediction_id: str | None = None, event: str | None = None, limit: int = 1000
    ) -> list[Attempt]:
        """Newest first."""
        found: list[Attempt] = []
        for a in reversed(self.attempts):
            if prediction_id and a.prediction_id != prediction_id:
                continue
            if event and a.event != event:
                continue
            found.append(a)
            if len(found) >= limit:
                break
        return found

    async def clear(self, owner: str | None = None) -> None:
        kept = [a for a in self.attempts if owner is not None and a.owner != owner]
        self.attempts.clear()
        self.attempts.extend(kept)


class WebhookDispatcher:
    """Follows the predictions created with a webhook and delivers their events."""

    def __init__(
        self, ctx: AppContext, agenda: AgendaLike | None = None, log: AttemptLog | None = None
    ) -> None:
        self._ctx = ctx
        self._wall = SystemClock()  # `webhook-timestamp` is real time, for receivers' checks
        self.attempts: AttemptLog = log or MemoryAttempts()
        self._agenda: AgendaLike = agenda or Agenda()
        self._seq = itertools.count()
        self._runner: _Runner | None = None

    def secret_for(self, owner: str) -> str:
        """The signing secret of a caller (`GET /webhooks/default/secret`)."""
        return default_secret(self._ctx.settings.seed, owner)

    def start(self) -> None:
        """Look at a shared schedule from now on (at start-up, with a shared store: other
        processes and earlier runs leave work in it). Call on the event loop."""
        if self._agenda.shared:
            self._running()

    async def schedule(self, p: Prediction, *, base: str, prefix: str) -> None:
        """Follow `p`, created with a webhook: each event goes out when it is due. Call on the
        event loop (a handler); returns at once."""
        if p.webhook is None:
            return
        await self._agenda.follow(
            Track(
                p.id,
                p.owner,
                p.webhook,
                p.webhook_events_filter,
                base,
                prefix,
                self.secret_for(p.owner),
                p.webhook_fail,
            )
        )
        self._running().wake.set()

    async def changed(self, p: Prediction) -> None:
        """`p`'s record changed (a cancel, a forced end, a read on the polls clock): look again,
        so a new end is delivered at once."""
        if await self._agenda.mark(p.id):
            self._running().wake.set()

    async def reset(self, owner: str | None = None) -> None:
        """Forget every attempt and followed prediction, and cancel what is pending (only
        `owner`'s predictions' attempts and deliveries still to come, when given)."""
        if owner is None:
            runner, self._runner = self._runner, None
            if runner is not None:
                runner.stop()
        await self._agenda.clear(owner)
        await self.attempts.clear(owner)
        if self._agenda.shared and owner is None:
            self._running()  # the shared schedule is watched all the time

    async def reset_runner(self) -> None:
        """Stop delivering from this process (shutdown); the schedule itself stays."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def busy(self) -> bool:
        """Whether a prediction is still followed, or a delivery still queued or in flight."""
        runner = self._runner
        return self._agenda.following() or (runner is not None and bool(runner.lanes))

    async def find(
        self, *, prediction_id: str | None = None, event: str | None = None, limit: int = 1000
    ) -> list[Attempt]:
        """Recorded attempts, newest first."""
        return await self.attempts.find(prediction_id=prediction_id, event=event, limit=limit)

    # ------------------------------------------------------------------ the dispatcher's task

    def _running(self) -> _Runner:
        loop = asyncio.get_running_loop()
        runner = self._runner
        if runner is None or runner.loop is not loop or runner.main is None or runner.main.done():
            if runner is not None:
                runner.stop()
            runner = self._runner = _Runner(loop)
            runner.main = loop.create_task(self._main(runner), name="mock-server webhooks")
            runner.main.add_done_callback(_log_crash)
            runner.look_again = True  # a new loop: look at every prediction again
        return runner

    async def _main(self, runner: _Runner) -> None:
        shared = self._agenda.shared
        try:
            while True:
                runner.wake.clear()
                if runner.look_again:
                    runner.look_again = False
                    await self._agenda.mark()
                until = await self._collect(runner)
                if not shared and not self._agenda.following() and not runner.lanes:
                    return  # idle; the next schedule() starts another
                await runner.sleep(self._ctx.clock, until, SHARED_LOOK_S if shared else None)
        finally:
            if self._runner is runner:
                self._runner = None
            for task in runner.tasks:
                task.cancel()
            await runner.client.aclose()

    async def _collect(self, runner: _Runner) -> datetime | None:
        """Queue every event now due; the moment the next one is due (None: only a change to a
        record can bring one, e.g. on the polls clock)."""
        ctx, agenda = self._ctx, self._agenda
        timed = ctx.timeline.mode is not ClockMode.POLLS
        try:
            ready = await agenda.ready(ctx.clock.now())
        except StoreUnavailable as exc:  # the shared store is away: look again soon
            log.warning("webhooks wait for the store: %s", exc.detail)
            return None
        for track in ready:
            pid = track.prediction_id
            try:
                p = await ctx.store.get(pid)
                fixture = ctx.models.get(p.model) if p is not None else None
                if p is None or fixture is None:  # reset, or evicted from the store
                    await agenda.drop(pid)
                    continue
                steps = step_count(p, fixture.log_style)
                moment = ctx.timeline.now_for(p)
                for due in await agenda.advance(track, p, steps, moment, timed=timed):
                    self._enqueue(runner, self._delivery(track, p, fixture, due))
            except StoreUnavailable as exc:  # its claim lapses and it is looked at again
                log.warning("webhooks of prediction %s wait for the store: %s", pid, exc.detail)
            except Exception:  # one bad record must not stop every other delivery
                log.exception("webhooks of prediction %s dropped", pid)
                await agenda.drop(pid)
        try:
            return await agenda.next_moment()
        except StoreUnavailable:
            return None

    def _delivery(self, track: Track, p: Prediction, fixture: ModelFixture, due: Due) -> Delivery:
        return Delivery(
            next(self._seq),
            track,
            due.event,
            message_id(p.id, due.event, due.number),
            p,
            state_at(p, due.at),  # what a later cancel cannot change
            fixture,
        )

    async def _render(self, d: Delivery) -> bytes:
        """The body: the prediction as a GET shows it at the event's moment."""
        # outputs.py needs the context, which needs this module: imported when first used.
        from mock_server.outputs import inline_outputs

        files = await inline_outputs(self._ctx, d.p, d.moment)  # `data:` URIs, if configured
        data = prediction_json(
            d.p, d.moment, d.fixture, base=d.track.base, prefix=d.track.prefix, files=files
        )
        return orjson.dumps(data)

    def _enqueue(self, runner: _Runner, d: Delivery) -> None:
        pid = d.track.prediction_id
        lane = runner.lanes.get(pid)
        if lane is None:
            lane = runner.lanes[pid] = deque()
            task = runner.loop.create_task(self._drain(runner, pid, lane))
            runner.tasks.add(task)
            task.add_done_callback(runner.tasks.discard)
        lane.append(d)
        runner.queued += 1
        if d.event != "completed":
            runner.droppable[d.seq] = d
        if runner.queued > MAX_QUEUED:
            self._drop_oldest(runner)

    def _drop_oldest(self, runner: _Runner) -> None:
        while runner.droppable:
            _, d = runner.droppable.popitem(last=False)
            if d.state == "queued":
                d.state = "dropped"
                runner.queued -= 1
                log.warning(
                    "more than %d webhooks waiting: dropped the %s event of prediction %s",
                    MAX_QUEUED,
                    d.event,
                    d.track.prediction_id,
                )
                return

    async def _drain(self, runner: _Runner, pid: str, lane: deque[Delivery]) -> None:
        """Send one prediction's deliveries one after the other, in the order they came due."""
        try:
            while lane:
                d = lane.popleft()
                if d.state == "dropped":
                    continue
                d.state = "sending"
                runner.droppable.pop(d.seq, None)
                try:
                    d.body = await self._render(d)
                    await self._deliver(runner, d)
                except Exception:  # a failed render; the next event still goes
                    log.exception("webhook %s of prediction %s not sent", d.event, pid)
                finally:
                    runner.queued -= 1
        finally:
            if runner.lanes.get(pid) is lane:
                del runner.lanes[pid]
            runner.wake.set()

    async def _deliver(self, runner: _Runner, d: Delivery) -> None:
        """Attempt until a 2xx; only `completed` is retried, with backoff on the clock."""
        number = 1
        while True:
            attempt = await self._attempt(runner, d, number)
            try:
                await self.attempts.add(attempt)
            except StoreUnavailable as exc:
                log.warning("webhook attempt not recorded: %s", exc.detail)
            if attempt.error is None:
                return
            delay = retry_delay(number, self._ctx.settings.time_scale)
            if d.event != "completed" or delay is None:
                log.warning(
                    "webhook %s of prediction %s to %s failed (attempt %d, not retried): %s",
                    d.event,
                    d.track.prediction_id,
                    d.track.url,
                    number,
                    attempt.error,
                )
                return
            await self._sleep(delay)
            number += 1

    async def _sleep(self, seconds: float) -> None:
        clock = self._ctx.clock
        when = clock.now() + timedelta(seconds=seconds)
        while clock.now() < when:
            await clock.sleep_until(when, limit=LOOK_AGAIN_S)

    async def _attempt(self, runner: _Runner, d: Delivery, number: int) -> Attempt:
        """One signed POST, or a failure a scenario forces without sending."""
        at, began = self._wall.now(), real_seconds()
        status: int | None = None
        if d.track.fails_left > 0:
            d.track.fails_left -= 1
            error: str | None = "connection refused (scenario webhook_fail; not sent)"
        elif self._ctx.settings.webhooks == "record":
            error = None  # --webhooks record: listed as delivered, never sent
        else:
            async with runner.limit:
                at, began = self._wall.now(), real_seconds()  # the signed time is the sending's
                headers = signed_headers(d.track.secret, d.webhook_id, int(at.timestamp()), d.body)
                try:
                    response = await runner.client.post(
                        d.track.url, content=d.body, headers=headers
                    )
                    status, error = response.status_code, _failure(response)
                except httpx.TimeoutException:
                    error = f"timed out after {TIMEOUT_S:g} s"
                except Exception as exc:  # no connection, a bad URL, a broken answer
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency_ms = (real_seconds() - began) * 1000
        pid, url = d.track.prediction_id, d.track.url
        return Attempt(
            at, pid, d.event, url, number, status, latency_ms, error, d.webhook_id, d.track.owner
        )


def _failure(response: httpx.Response) -> str | None:
    """None for a 2xx; a redirect is not followed, so it is a failure like any other status."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirect to {response.headers.get('location', '')!r} not followed"
    return f"HTTP {status}"


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the webhook dispatcher stopped", exc_info=task.exception())
