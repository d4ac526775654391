"""Per-token rate limits as the real service applies them (`--rate-limits real`): 600 creates and
3000 other requests a minute, with short bursts over the limit allowed; past them a 429 with
`Retry-After` and Replicate's body.

Token buckets on the machine's monotonic clock (rate limits are about real request rates, not
about the emulated clock of the predictions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mock_server.clock import real_seconds
from mock_server.errors import ForcedError

# (requests a minute, burst): the documented limits; a burst of ten seconds' worth.
LIMITS = {"create": (600, 100), "other": (3000, 500)}
MAX_BUCKETS = 100_000  # tokens tracked at once (then the oldest start afresh)


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, now: Callable[[], float] = real_seconds) -> None:
        self.now = now
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def take(self, owner: str, kind: str) -> None:
        """Spend one request of `owner`'s `kind` budget, or raise the 429 the real API sends."""
        per_minute, burst = LIMITS[kind]
        rate = per_minute / 60
        now = self.now()
        bucket = self._buckets.get((owner, kind))
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[(owner, kind)] = Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = max(1, math.ceil((1 - bucket.tokens) / rate))
        unit = "second" if wait == 1 else "seconds"
        raise ForcedError(
            429,
            {
                "title": "Request was throttled",
                "detail": f"Request was throttled. Expected available in {wait} {unit}.",
                "status": 429,
            },
            {"Retry-After": str(wait), "ratelimit-remaining": "0", "ratelimit-reset": str(wait)},
        )

    def reset(self) -> None:
        self._buckets.clear()
