"""Webhook signatures as Replicate makes them (Standard Webhooks): each caller's signing secret,
message ids, and the three `webhook-*` headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_DIGITS = 24  # as in Replicate's `msg_p5jXN8AQM9LWM0D4loKWxJek`


def default_secret(seed: int, owner: str) -> str:
    """`whsec_` and 24 random-looking bytes in base64, derived from the server's seed and the
    caller's owner key (a hash of the token): the same for a token on every run, different for
    another token or seed. Standard base64 has no `_`, which the Python client splits on."""
    key = f"mock-server webhook secret {seed}".encode()
    digest = hmac.new(key, owner.encode(), hashlib.sha256).digest()[:SECRET_BYTES]
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def message_id(prediction_id: str, event: str, number: int = 0) -> str:
    """`msg_` and 24 base62 characters, stable per prediction and event (`number` tells one
    `logs` event from the next); a retry sends the same id, so receivers can deduplicate."""
    digest = hashlib.blake2b(f"{prediction_id}:{event}:{number}".encode(), digest_size=18)
    value = int.from_bytes(digest.digest(), "big")
    digits = []
    for _ in range(_ID_DIGITS):
        value, rest = divmod(value, 62)
        digits.append(_BASE62[rest])
    return "msg_" + "".join(digits)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{msg_id}.{timestamp}.{body}`, keyed with the base64-decoded
    part of `secret` after `whsec_` (the standardwebhooks library does the signing)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret).sign(msg_id, when, body.decode("utf-8"))


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
