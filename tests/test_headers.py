"""`Prefer` (RFC 7240): the parser, and openapi.yaml's pattern for the header, which must accept
exactly what the parser accepts (schemathesis sends values on both sides of the pattern)."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server import Settings
from mock_server.errors import BadRequest
from mock_server.headers import PREFER_PATTERN, Wait, prefer_wait, preferences

PATTERN = re.compile(PREFER_PATTERN)
SPEC_CHECK = jsonschema_rs.validator_for({"type": "string", "pattern": PREFER_PATTERN})
# Characters that matter to the grammar, and a few that do not belong in it.
ALPHABET = 'wWaAiItT0156=;, \t"\\-x\x7f\xe9'


def accepted(value: str) -> bool:
    try:
        prefer_wait([value])
    except BadRequest:
        return False
    return True


def test_the_spec_declares_this_pattern() -> None:
    spec = yaml.safe_load(Settings().spec_path.read_text())
    assert spec["components"]["parameters"]["Prefer"]["schema"]["pattern"] == PREFER_PATTERN


@settings(max_examples=150, deadline=None)
@given(st.from_regex(PATTERN, fullmatch=True))
def test_every_value_the_pattern_matches_is_accepted(value: str) -> None:
    assert accepted(value), value
    assert SPEC_CHECK.is_valid(value)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=24))
def test_the_pattern_matches_exactly_what_is_accepted(value: str) -> None:
    """For a field value as HTTP delivers it: without leading or trailing whitespace."""
    field = value.strip(" \t")
    matched = PATTERN.fullmatch(field) is not None
    assert accepted(field) == matched, field
    assert accepted(value) == matched, value  # the parser strips whitespace itself
    assert SPEC_CHECK.is_valid(field) == matched, field  # the server checks it with jsonschema-rs


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("wait", ["wait"]),
        ("respond-async, wait=10", ["respond-async", "wait"]),
        ('Return=minimal; a="x,y" ; b, Wait=5;c=1', ["return", "wait"]),
        (",, a ,, b ,", ["a", "b"]),
        ("a;", ["a"]),
    ],
)
def test_preferences_in_order(header: str, names: list[str]) -> None:
    found = preferences(header)
    assert found is not None
    assert [p.name for p in found] == names


@pytest.mark.parametrize("header", ["", " ", ",", "a b", "a=b=c", 'a="x', "=5", "a;=1", "a,;"])
def test_not_a_list_of_preferences(header: str) -> None:
    assert preferences(header) is None


@pytest.mark.parametrize(
    ("lines", "wait"),
    [
        ([], None),
        (["respond-async"], None),
        (["wait"], Wait(60, given=False)),
        (["wait=1"], Wait(1, given=True)),
        (['wait="60"'], Wait(60, given=True)),
        (["handling=lenient", "wait=9"], Wait(9, given=True)),
        (["wait=9", "wait=0"], Wait(9, given=True)),
    ],
)
def test_prefer_wait(lines: list[str], wait: Wait | None) -> None:
    assert prefer_wait(lines) == wait


def test_applied_names_only_the_wait() -> None:
    assert Wait(60, given=False).applied() == "wait"
    assert Wait(60, given=True).applied() == "wait=60"
    assert Wait(5, given=True).applied() == "wait=5"
