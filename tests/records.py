"""Prediction records built directly, for tests of the store, the lifecycle and the admin API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mock_server.models import Prediction

T0 = datetime(2024, 1, 1, tzinfo=UTC)
_BASE = Prediction(
    id="a" * 26,
    owner="o",
    model="black-forest-labs/flux-schnell",
    input={"prompt": "a cat"},
    created_at=T0,
    setup_s=1.0,
    predict_s=4.0,
    width=1024,
    height=1024,
    fmt="webp",
    quality=80,
    outputs=1,
)


def prediction(**changes: Any) -> Prediction:
    """A record with sensible defaults (flux-schnell, 1 s set-up, 4 s run, created at T0)."""
    return replace(_BASE, **changes)
