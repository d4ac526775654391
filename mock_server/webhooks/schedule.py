"""Which webhook events a prediction sends, to where and when: functions of the create's body,
the stored record and what was already sent (status itself comes from lifecycle.py), and the
Agenda of the predictions followed. No I/O here.

Events, in the order a prediction sends them: `start` when processing begins (`started_at`),
`logs` while processing as log lines appear (at most one per 500 ms of the clock), `output` when
outputs appear (these image models: at the end, when it succeeded), `completed` at the end
(succeeded, failed, canceled, aborted). A cancel or a forced end moves the end, and with it
`output` and `completed`, to that moment.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from mock_server.errors import InvalidField
from mock_server.lifecycle import end_of, start_time, state_at
from mock_server.models import Prediction, Status

EVENTS = ("start", "output", "logs", "completed")
DEFAULT_EVENTS = ("output", "completed")
LOGS_INTERVAL = timedelta(milliseconds=500)
# Seconds before each retry of `completed` (times --time-scale): the seventh and last attempt
# comes 63 s after the first, "about a minute after completion" as Replicate retries.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
_TICK = timedelta(microseconds=1)  # past a step's boundary, whatever the float rounding


def events_filter(value: Any) -> tuple[str, ...]:
    """The create's `webhook_events_filter` in the order events happen; absent or empty: the
    API's default, `output` and `completed`."""
    chosen = set(value) if isinstance(value, list) and value else set(DEFAULT_EVENTS)
    return tuple(e for e in EVENTS if e in chosen)


def target_problems(body: Mapping[str, Any], allowed_hosts: Iterable[str]) -> list[InvalidField]:
    """What is wrong with the create's `webhook`: not http(s) (as the body's schema says, in
    plainer words), or a host that `--webhook-allow-host` does not list. A URL these pass that
    cannot be reached fails its deliveries, recorded like any other failure."""
    url = body.get("webhook")
    if not isinstance(url, str):
        return []  # absent, or mistyped (the body's schema names that)
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, (parts.hostname or "").lower(), parts.port
    except ValueError:  # a bad port or IPv6 address
        scheme, host, port = url.partition(":")[0].lower(), "", None
    if scheme not in ("http", "https"):
        return [InvalidField("format", "webhook", "webhook must be an http or https URL")]
    allowed = [h.strip().strip("[]").lower() for h in allowed_hosts]
    if allowed and host not in allowed and f"{host}:{port}" not in allowed:
        return [
            InvalidField(
                "host_not_allowed",
                "webhook",
                f"webhook host {host or '(none)'} is not allowed (allowed: {', '.join(allowed)})",
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class Due:
    """One event: when it happens on the clock, and its kind."""

    at: datetime
    event: str
    number: int = 0  # the how-manieth of its kind (`logs` events are many)


@dataclass(slots=True)
class Sent:
    """What a prediction has already sent (scheduled for delivery)."""

    events: set[str] = field(default_factory=set)  # start, output, completed
    logs_at: datetime | None = None  # the moment of the last `logs` event
    logs: int = 0

    def mark(self, due: Due) -> None:
        if due.event == "logs":
            self.logs_at, self.logs = due.at, self.logs + 1
        else:
            self.events.add(due.event)


def next_due(p: Prediction, steps: int, events: Iterable[str], sent: Sent) -> Due | None:
    """The next event `p` sends, as the record now stands (None: nothing more, ever).

    `steps` is the number of tqdm lines the run logs (logs.step_count)."""
    wanted = set(events)
    if "completed" in sent.events:
        return None
    end, final = end_of(p)
    started = state_at(p, end).started_at
    if started is not None:
        if "start" in wanted and "start" not in sent.events:
            return Due(started, "start")
        if "logs" in wanted:
            at = _next_logs(p, steps, started, end, sent.logs_at)
            if at is not None:
                return Due(at, "logs", sent.logs)
    if "output" in wanted and "output" not in sent.events and final is Status.SUCCEEDED:
        return Due(end, "output")
    if "completed" in wanted:
        return Due(end, "completed")
    return None


def _next_logs(
    p: Prediction, steps: int, started: datetime, end: datetime, last: datetime | None
) -> datetime | None:
    """When the logs next change while processing (the first lines come at the start), no sooner
    than 500 ms after the last `logs` event."""
    if last is None:
        at = started
    else:
        done = _steps_done(p, steps, last)
        if done >= steps:
            return None
        change = start_time(p) + timedelta(seconds=(done + 1) * p.predict_s / steps) + _TICK
        at = max(change, last + LOGS_INTERVAL)
    return at if at < end else None


def _steps_done(p: Prediction, steps: int, moment: datetime) -> int:
    """The tqdm steps logged at `moment`, as logs.logs_at counts them."""
    if p.predict_s <= 0:
        return steps
    progress = min(1.0, (moment - start_time(p)).total_seconds() / p.predict_s)
    return min(steps, int(progress * steps))


def retry_delay(attempt: int, time_scale: float) -> float | None:
    """Seconds on the clock before retrying `completed` after failed attempt number `attempt`
    (1-based); None when that was the last."""
    if attempt > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempt - 1] * time_scale


@dataclass(slots=True)
class Track:
    """A prediction created with a webhook, followed until its last event is sent."""

    prediction_id: str
    owner: str
    url: str
    events: tuple[str, ...]
    base: str  # the create's public base URL and API prefix: the body's URLs are the GET's
    prefix: str
    secret: str
    fails_left: int  # a scenario's `webhook_fail`: attempts that fail without being sent
    sent: Sent = field(default_factory=Sent)
    next_at: datetime | None = None  # the moment of its next event on the clock
    queued_at: datetime | None = None  # the moment of its live entry in the agenda's heap


class AgendaLike(Protocol):
    """The schedule: in this process (Agenda) or shared by every process (RedisAgenda, where
    each prediction's next event is claimed by exactly one of them)."""

    shared: bool

    async def follow(self, track: Track) -> None: ...

    async def mark(self, prediction_id: str | None = None) -> bool: ...

    async def drop(self, prediction_id: str) -> None: ...

    async def clear(self, owner: str | None = None) -> None: ...

    async def ready(self, now: datetime) -> list[Track]: ...

    async def advance(
        self, track: Track, p: Prediction, steps: int, moment: datetime, *, timed: bool
    ) -> list[Due]: ...

    async def next_moment(self) -> datetime | None: ...

    def following(self) -> bool: ...


def due_events(
    track: Track, p: Prediction, steps: int, moment: datetime
) -> tuple[list[Due], Due | None]:
    """The track's events due by `moment` (the prediction's now), in order, marked sent; and the
    next one after them (None: nothing more, ever)."""
    found = []
    while (due := next_due(p, steps, track.events, track.sent)) is not None:
        if due.at > moment:
            break
        found.append(due)
        track.sent.mark(due)
    track.next_at = due.at if due is not None else None
    return found, due


class Agenda:
    """The predictions followed, and when each one's next event is due.

    A heap keyed by that moment says which to look at when the clock moves; an entry goes stale
    when the record changes (a cancel moves the end) and only the track's live one counts. A
    change, or a read on the polls clock, marks the prediction to look at on the next pass.
    """

    shared = False

    def __init__(self) -> None:
        self.tracks: dict[str, Track] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._marked: set[str] = set()
        self._seq = itertools.count()

    def following(self) -> bool:
        return bool(self.tracks)

    async def follow(self, track: Track) -> None:
        self.tracks[track.prediction_id] = track
        self._marked.add(track.prediction_id)

    async def mark(self, prediction_id: str | None = None) -> bool:
        """Look at this prediction (None: at every one) on the next pass; False if not
        followed."""
        if prediction_id is None:
            self._marked.update(self.tracks)
            return True
        if prediction_id not in self.tracks:
            return False
        self._marked.add(prediction_id)
        return True

    async def drop(self, prediction_id: str) -> None:
        self.tracks.pop(prediction_id, None)

    async def clear(self, owner: str | None = None) -> None:
        if owner is not None:
            for pid in [pid for pid, t in self.tracks.items() if t.owner == owner]:
                del self.tracks[pid]  # its heap entries go stale
            return
        self.tracks.clear()
        self._heap.clear()
        self._marked.clear()

    async def ready(self, now: datetime) -> list[Track]:
        """The tracks to look at: those marked, and those whose next event is due by `now`."""
        ids, self._marked = self._marked, set()
        while self._heap and self._heap[0][0] <= now:
            at, _, pid = heapq.heappop(self._heap)
            track = self.tracks.get(pid)
            if track is not None and track.queued_at == at:
                track.queued_at = None
                ids.add(pid)
        return [self.tracks[pid] for pid in sorted(ids) if pid in self.tracks]

    async def advance(
        self, track: Track, p: Prediction, steps: int, moment: datetime, *, timed: bool
    ) -> list[Due]:
        """The track's events due by `moment` (the prediction's now), in order, marked sent.
        `timed`: the clock brings the next one (not on the polls clock, where reads do)."""
        found, due = due_events(track, p, steps, moment)
        if due is None:
            await self.drop(track.prediction_id)
        elif timed and track.queued_at != due.at:
            track.queued_at = due.at
            heapq.heappush(self._heap, (due.at, next(self._seq), track.prediction_id))
        return found

    async def next_moment(self) -> datetime | None:
        """When the clock next brings an event (None: only a change can)."""
        while self._heap and self._stale(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _stale(self, entry: tuple[datetime, int, str]) -> bool:
        track = self.tracks.get(entry[2])
        return track is None or track.queued_at != entry[0]
