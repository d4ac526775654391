"""Which moment a prediction is seen at, per clock mode (`--clock`).

- `time` and `manual`: the clock's now (real time, or time moved only through the admin API).
- `polls`: each read of a prediction moves it one status, whatever the clock says: the create
  answers `starting`, the first read sees `processing` (half way), the second `succeeded`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from mock_server.clock import Clock, ManualClock, SystemClock, real_seconds
from mock_server.errors import ClockStalled
from mock_server.lifecycle import finish_time, start_time
from mock_server.models import Prediction


class ClockMode(StrEnum):
    TIME = "time"
    POLLS = "polls"
    MANUAL = "manual"


def clock_for(mode: ClockMode) -> Clock:
    """The clock a mode runs on; a manual clock starts at the real time, so timestamps look
    current."""
    return ManualClock(SystemClock().now()) if mode is ClockMode.MANUAL else SystemClock()


def mode_for(clock: Clock, requested: ClockMode) -> ClockMode:
    """The mode follows the clock actually running: an injected ManualClock makes `time` manual,
    and a clock nobody can move makes `manual` time."""
    manual = isinstance(clock, ManualClock)
    if requested is ClockMode.TIME and manual:
        return ClockMode.MANUAL
    if requested is ClockMode.MANUAL and not manual:
        return ClockMode.TIME
    return requested


MAX_WATCHED = 10_000  # predictions a StallGuard follows at once (then it starts over)


class StallGuard:
    """On a manual clock a client waiting for a prediction waits until somebody moves the clock.
    With a timeout (`--clock-stall-timeout`; the pytest plugin sets one), a create held that
    long, or a client still polling a running prediction after that many real seconds of a
    standing clock, gets ClockStalled (409, naming the fix) instead of hanging."""

    def __init__(self, clock: Clock, timeout: float | None) -> None:
        self.clock = clock
        self.timeout = timeout or 0.0
        self.active = timeout is not None and isinstance(clock, ManualClock)
        self._reads: dict[str, tuple[datetime, float]] = {}

    def read(self, prediction_id: str, running: bool) -> None:
        """A client read a prediction; ClockStalled once it has read it running for `timeout`
        real seconds while the clock stood still."""
        if not self.active:
            return
        if not running:
            self._reads.pop(prediction_id, None)
            return
        now, real = self.clock.now(), real_seconds()
        first = self._reads.get(prediction_id)
        if first is None or first[0] != now:
            if len(self._reads) >= MAX_WATCHED:
                self._reads.clear()
            self._reads[prediction_id] = (now, real)
        elif real - first[1] >= self.timeout:
            raise ClockStalled(self.timeout)

    async def sleep_until(self, when: datetime, *, limit: float) -> None:
        """The clock's own sleep, in slices of `timeout`; ClockStalled when one passes with the
        clock standing still."""
        if not self.active:
            await self.clock.sleep_until(when, limit=limit)
            return
        give_up = real_seconds() + limit
        while self.clock.now() < when and (remaining := give_up - real_seconds()) > 0:
            before = self.clock.now()
            await self.clock.sleep_until(when, limit=min(remaining, self.timeout))
            if self.clock.now() == before and real_seconds() < give_up:
                raise ClockStalled(self.timeout)


class Timeline:
    def __init__(self, clock: Clock, mode: ClockMode) -> None:
        self.clock = clock
        self.mode = mode

    def now_for(self, p: Prediction) -> datetime:
        if self.mode is not ClockMode.POLLS:
            return self.clock.now()
        if p.reads == 0:
            return p.created_at
        start = start_time(p)
        if p.reads == 1:
            return start + timedelta(seconds=p.predict_s / 2)
        return max(finish_time(p), start)

    def read(self, p: Prediction) -> bool:
        """Count one read of `p`; True when the record changed and must be saved."""
        if self.mode is ClockMode.POLLS and p.reads < 2:
            p.reads += 1
            return True
        return False
