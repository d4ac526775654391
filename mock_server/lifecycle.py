"""Where a prediction is in its life at a given time: a pure function of the record and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mock_server.models import Prediction, Status


@dataclass(frozen=True, slots=True)
class State:
    status: Status
    started_at: datetime | None
    completed_at: datetime | None
    progress: float  # 0..1 of the processing phase
    data_removed: bool = False  # past --retention: input, output and logs are gone


def start_time(p: Prediction) -> datetime:
    return p.created_at + timedelta(seconds=p.setup_s)


def finish_time(p: Prediction, start: datetime | None = None) -> datetime:
    """When the model ends on its own (or when an admin forced it to)."""
    if p.ends_at is not None:
        return p.ends_at
    return (start or start_time(p)) + timedelta(seconds=p.predict_s)


def end_of(p: Prediction, start: datetime | None = None) -> tuple[datetime, Status]:
    """The first of: the model's finish, a cancel, the deadline; and the status it brings."""
    start = start or start_time(p)
    end, status = finish_time(p, start), p.outcome
    if p.canceled_at is not None and p.canceled_at < end:
        end, status = p.canceled_at, Status.CANCELED
    if p.deadline is not None and p.deadline < end:
        end = p.deadline
        status = Status.ABORTED if p.deadline < start else Status.CANCELED
    return end, status


def state_at(p: Prediction, now: datetime) -> State:
    """starting -> processing -> succeeded | failed | canceled; aborted: deadline before start."""
    start = start_time(p)
    end, final = end_of(p, start)
    if now >= end:
        if final in (Status.SUCCEEDED, Status.FAILED):
            started: datetime | None = min(start, end)  # forced early: it "ran" at that moment
        else:
            started = start if end >= start and final is not Status.ABORTED else None
        progress = 1.0 if final is Status.SUCCEEDED else _progress(p, start, end)
        return State(final, started, end, progress)
    if now < start:
        return State(Status.STARTING, None, None, 0.0)
    return State(Status.PROCESSING, start, None, _progress(p, start, now))


def _progress(p: Prediction, start: datetime, moment: datetime) -> float:
    if moment <= start or p.predict_s <= 0:
        return 0.0
    return min(1.0, (moment - start).total_seconds() / p.predict_s)


def metrics(p: Prediction, state: State) -> dict[str, float | int]:
    """`predict_time`, `total_time`, `image_count` once terminal; `{}` before, as the API does."""
    if not state.status.terminal or state.completed_at is None:
        return {}
    total = (state.completed_at - p.created_at).total_seconds()
    predict = (state.completed_at - state.started_at).total_seconds() if state.started_at else 0.0
    result: dict[str, float | int] = {
        "predict_time": round(predict, 6),
        "total_time": round(total, 6),
    }
    if state.status is Status.SUCCEEDED:
        result["image_count"] = p.outputs
    return result
