"""Webhooks as Replicate sends them: what is due when (schedule), how it is signed (signing),
and how it is delivered, retried and recorded (delivery)."""

from __future__ import annotations

from mock_server.webhooks.delivery import Attempt, WebhookDispatcher
from mock_server.webhooks.schedule import (
    DEFAULT_EVENTS,
    EVENTS,
    RETRY_DELAYS,
    events_filter,
    target_problems,
)
from mock_server.webhooks.signing import default_secret, message_id, sign, signed_headers

__all__ = [
    "DEFAULT_EVENTS",
    "EVENTS",
    "RETRY_DELAYS",
    "Attempt",
    "WebhookDispatcher",
    "default_secret",
    "events_filter",
    "message_id",
    "sign",
    "signed_headers",
    "target_problems",
]
