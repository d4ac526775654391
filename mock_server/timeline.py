"""Which moment a prediction is seen at, per clock mode (`--clock`).

- `time` and `manual`: the clock's now (real time, or time moved only through the admin API).
- `polls`: each read of a prediction moves it one status, whatever the clock says: the create
  answers `starting`, the first read sees `processing` (half way), the second `succeeded`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from mock_server.clock import Clock, ManualClock, SystemClock
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
