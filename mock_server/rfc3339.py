"""RFC 3339 date-times (JSON Schema's `date-time`), as the list filters `created_after` and
`created_before` take them: `2025-01-01T00:00:00Z`, `2025-01-01T01:00:00.5+01:00`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
# The Gregorian calendar repeats every 400 years: a date is computed 400 years later (or earlier,
# in the second half of the range), where Python's datetime holds it and its offset too.
_CYCLE = 400
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def parse(text: str) -> datetime:
    """The instant `text` names, aware UTC; ValueError when it is not an RFC 3339 date-time.

    Fractions finer than a microsecond round up, which keeps `>=` and `<` against microsecond
    timestamps exact. A leap second (`:60`) is the first instant of the next minute. Instants
    outside what datetime holds (year 0000, or past 9999 once the offset is applied) become its
    earliest or latest.
    """
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    try:
        return _instant(match)
    except ValueError as exc:  # a day, hour or offset out of range
        raise ValueError(f"not an RFC 3339 date-time: {text!r} ({exc})") from None


def _instant(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, off_hours, off_minutes = match.groups()[6:]
    micro = int((fraction or "")[:6].ljust(6, "0"))
    if fraction and fraction[6:].strip("0"):
        micro += 1  # may reach 1_000_000: added as a timedelta below
    leap = int(second == 60)
    offset = timedelta()
    if sign:
        if int(off_hours) > 23 or int(off_minutes) > 59:
            raise ValueError(f"not a UTC offset: {sign}{off_hours}:{off_minutes}")
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        offset = -offset if sign == "-" else offset
    shift = _CYCLE if year < 5000 else -_CYCLE
    moment = datetime(year + shift, month, day, hour, minute, second - leap, tzinfo=UTC)
    moment += timedelta(seconds=leap, microseconds=micro) - offset
    real_year = moment.year - shift
    if real_year < 1:
        return _EARLIEST
    if real_year > 9999:
        return _LATEST
    return moment.replace(year=real_year)
