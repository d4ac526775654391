"""Problems from several schemas merged into one 422: each once, in field order."""

from __future__ import annotations

import pytest

from mock_server.errors import InvalidField, ValidationFailed
from mock_server.validation import SchemaValidator, problems, raise_problems

SCHEMA = SchemaValidator.plain(
    {
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {"type": "string"}, "sizes": {"items": {"maximum": 4}}},
    }
)


def listed(*groups: list[InvalidField]) -> list[InvalidField]:
    with pytest.raises(ValidationFailed) as failed:
        raise_problems(*groups)
    return failed.value.invalid_fields


def test_no_problems_raise_nothing() -> None:
    raise_problems([], [])
    assert problems(SCHEMA, {"prompt": "x"}, "input") == []


def test_array_indices_sort_as_numbers() -> None:
    sizes = [5] * 12
    found = problems(SCHEMA, {"prompt": 1, "sizes": sizes}, "input")
    fields = [p.field for p in listed(found)]
    assert fields == ["input.prompt", *(f"input.sizes.{i}" for i in range(12))]


def test_a_field_reported_by_an_earlier_group_is_listed_once() -> None:
    own = [
        InvalidField("enum", "input.x", "x must be one of the following: 1"),
        InvalidField("required", "input", "prompt is required"),
    ]
    general = [
        InvalidField("invalid_type", "input.x", "Invalid type. Expected: string, given: integer"),
        InvalidField("required", "input", "prompt is required"),
        InvalidField("required", "input", "seed is required"),  # another property: kept
        InvalidField("additional_property_not_allowed", "", "Additional property a is not allowed"),
    ]
    assert listed(own, general) == [
        general[3],
        own[1],
        general[2],
        own[0],
    ]


def test_duplicates_within_a_group_are_dropped() -> None:
    twice = InvalidField("number_lte", "input.n", "Must be less than or equal to 4")
    assert listed([twice, twice]) == [twice]
