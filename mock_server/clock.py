"""The one injected clock: the only module that reads the wall clock or sleeps.

Everything that waits (sync mode, deadlines, streams) waits *on the clock*, so advancing a
ManualClock releases it and tests never sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime, *, limit: float) -> None:
        """Return once this clock has reached `when` (never before), or once `limit` real
        seconds have passed."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime, *, limit: float) -> None:
        # An event loop's timer may fire a little early (uvloop's run on whole milliseconds, and
        # the loop's monotonic clock is not the wall clock), so sleep again until `when` is real.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit
        while (delay := (when - self.now()).total_seconds()) > 0:
            remaining = give_up - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(delay, remaining))


class ManualClock:
    """Time that moves only when told to (tests, `--clock manual`, `POST /__admin/clock`).

    `advance` and `set` may be called from any thread; they wake every `sleep_until` waiter.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        return self.set(self._now + timedelta(seconds=seconds))

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._now = when
            waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            loop.call_soon_threadsafe(_wake, future)
        return self._now

    async def sleep_until(self, when: datetime, *, limit: float) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + limit
        while self._now < when:
            remaining = give_up - loop.time()
            if remaining <= 0:
                return
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if self._now >= when:
                    return
                self._waiters.add((loop, future))
            try:
                await asyncio.wait_for(future, remaining)
            except TimeoutError:
                return
            finally:
                with self._lock:
                    self._waiters.discard((loop, future))


def real_seconds() -> float:
    """The machine's monotonic clock: how long a client has really waited, whatever the mode."""
    return time.monotonic()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
