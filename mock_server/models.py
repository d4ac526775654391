"""The stored prediction record and the status values the API uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self not in (Status.STARTING, Status.PROCESSING)


@dataclass(slots=True)
class Prediction:
    """What the store keeps. Status, logs, output and metrics are computed from it and a clock."""

    id: str
    owner: str  # a hash of the caller's token: each token sees only its own predictions
    model: str  # "owner/name"
    input: dict[str, Any]  # as submitted, unknown keys kept
    created_at: datetime
    setup_s: float  # seconds in `starting` (already scaled)
    predict_s: float  # seconds in `processing` (already scaled)
    width: int
    height: int
    fmt: str  # webp | jpg | png
    quality: int
    outputs: int
    seq: int = 0  # creation order, assigned by the store
    canceled_at: datetime | None = None  # a cancel request (or a forced cancel) arrived then
    deadline: datetime | None = None  # `Cancel-After`: canceled (or aborted) when it passes
    ends_at: datetime | None = None  # forced end (admin): replaces the model's own finish time
    outcome: Status = Status.SUCCEEDED  # how it ends: succeeded, or failed/canceled by a scenario
    error: str | None = None  # the message of a failed outcome
    reads: int = 0  # GETs so far, for the `polls` clock
    source: str = "api"
    webhook: str | None = None  # the create's `webhook` URL (deliveries: mock_server/webhooks/)
    webhook_events_filter: tuple[str, ...] = ()  # the events sent there, in API order
    webhook_fail: int = 0  # a scenario's `webhook_fail`: delivery attempts that fail unsent
