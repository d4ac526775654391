"""The create request's control headers: `Prefer: wait[=N]` (sync mode) and `Cancel-After`."""

from __future__ import annotations

import re

from mock_server.errors import BadRequest

MAX_WAIT = 60
_PREFER = re.compile(r"^\s*wait(?:\s*=\s*(\d{1,2}))?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"(\d{1,5}(?:\.\d{1,3})?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def wait_seconds(prefer: str | None) -> int | None:
    """`Prefer: wait` is 60 s, `wait=N` is N (1 to 60); None without the header."""
    if prefer is None:
        return None
    match = _PREFER.match(prefer)
    seconds = int(match.group(1) or MAX_WAIT) if match else 0
    if not 1 <= seconds <= MAX_WAIT:
        raise BadRequest(f"Invalid Prefer header {prefer[:60]!r}: use `wait` or `wait=N`, N 1-60.")
    return seconds


def cancel_after_seconds(value: str | None) -> float | None:
    """A Go-style duration (`30s`, `1m`, `1h30m`, `500ms`) in seconds; None without the header."""
    if value is None:
        return None
    text = value.strip()
    parts = _DURATION.findall(text)
    if not 1 <= len(parts) <= 3 or "".join(n + u for n, u in parts) != text:
        raise BadRequest(
            f"Invalid Cancel-After header {value[:60]!r}: use a duration like 30s or 1m."
        )
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)  # `0s`: aborted at once
