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


def start_time(p: Prediction) -> datetime:
    return p.created_at + timedelta(seconds=p.setup_s)


def finish_time(p: Prediction) -> datetime:
    return start_time(p) + timedelta(seconds=p.predict_s)


def state_at(p: Prediction, now: datetime) -> State:
    """starting -> processing -> succeeded, unless canceled before the end."""
    start, finish = start_time(p), finish_time(p)
    if p.canceled_at is not None and p.canceled_at < finish:
        moment = p.canceled_at
        started = start if moment >= start else None
        return State(Status.CANCELED, started, moment, _progress(p, start, moment))
    if now < start:
        return State(Status.STARTING, None, None, 0.0)
    if now < finish:
        return State(Status.PROCESSING, start, None, _progress(p, start, now))
    return State(Status.SUCCEEDED, start, finish, 1.0)


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
