"""RFC 3339 date-times for the list filters: every value the spec's `format: date-time` accepts
(the server checks it with jsonschema-rs first) must parse, to the right instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server import rfc3339

DATE_TIME = jsonschema_rs.validator_for(
    {"type": "string", "format": "date-time"}, validate_formats=True
)


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2025-01-01T00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01t00:00:00z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T01:30:00+01:30", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2024-12-31T19:00:00-05:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00-00:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00.5Z", datetime(2025, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2025-01-01T00:00:00.0000001Z", datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00.1234560000Z", datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),  # a leap second
        ("2024-02-29T12:00:00Z", datetime(2024, 2, 29, 12, tzinfo=UTC)),
        ("0000-01-01T00:00:00Z", datetime.min.replace(tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", datetime.min.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59-23:59", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_instants(text: str, instant: datetime) -> None:
    assert rfc3339.parse(text) == instant


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-01",
        "2025-01-01T00:00:00",
        "2025-01-01 00:00:00Z",
        "2025-01-01T00:00Z",
        "2025-01-01T00:00:00.Z",
        "2025-01-01T00:00:00+0100",
        "2025-01-01T00:00:00+24:00",
        "2025-01-01T00:00:00+01:60",
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:61:00Z",
        "٢٠٢٥-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z ",
    ],
)
def test_not_date_times(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        rfc3339.parse(text)


OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(24 * 60 - 1), 24 * 60 - 1)
)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=OFFSETS), st.sampled_from(["seconds", "microseconds", "auto"]))
def test_isoformat_round_trips(moment: datetime, timespec: str) -> None:
    text = moment.isoformat(timespec=timespec)  # what the Stainless client sends
    assert DATE_TIME.is_valid(text)
    expected = moment.replace(microsecond=0) if timespec == "seconds" else moment
    assert rfc3339.parse(text) == expected


@settings(max_examples=1000, deadline=None)
@given(
    st.from_regex(
        r"(0000|00[0-9]{2}|[0-9]{4}|99[0-9]{2}|9999)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,12})?"
        r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?",
        fullmatch=True,
    )
)
def test_whatever_the_spec_accepts_parses(text: str) -> None:
    if DATE_TIME.is_valid(text):
        rfc3339.parse(text)
    elif ":60" not in text:  # the parser takes a leap second at any minute; the spec check not
        with pytest.raises(ValueError, match="RFC 3339"):
            rfc3339.parse(text)
