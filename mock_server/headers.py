"""The create request's control headers: `Prefer` (RFC 7240; sync mode) and `Cancel-After`.

`Prefer` is a comma-separated list of preferences, each `token [= word] *(; parameter)`, a word
being a token or a quoted string. Names compare case-insensitively; an empty value is no value
(RFC 7240 section 2). Only `wait` (`wait`: 60 s, `wait=N`: N s, 1-60) is acted on; any other
preference is ignored. Only its first occurrence counts, so a later `wait` is ignored whatever its
value. A list that does not parse, or a first `wait` whose value is not a whole number from 1 to
60, is a 400. `PREFER_PATTERN` (openapi.yaml's pattern for the header) matches exactly the field
values `prefer_wait` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mock_server.errors import BadRequest

MAX_WAIT = 60
_DURATION = re.compile(r"(\d{1,5}(?:\.\d{1,3})?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# RFC 7230 section 3.2.6: token, quoted-string; section 3.2.3: OWS (BWS is OWS too).
_TCHAR = "-!#$%&'*+.^_`|~0-9A-Za-z"
_T = f"[{_TCHAR}]"
_OWS = "[ \\t]*"
_TOKEN = f"{_T}+"
_QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"'
_WORD = f"(?:{_TOKEN}|{_QUOTED})"
_VALUE = f"(?:{_OWS}={_OWS}{_WORD}?)?"  # `foo=` and `foo=""` are `foo` (RFC 7240 section 2)
_SECONDS = "0*(?:[1-9]|[1-5][0-9]|60)"  # 1 to 60, leading zeros allowed
_WAIT_VALUE = f'(?:{_OWS}={_OWS}(?:{_SECONDS}|"(?:{_SECONDS})?")?)?'


def _other(letter: str) -> str:
    """The token characters other than `letter` in either case."""
    chars = _TCHAR
    for first, last, c in (("A", "Z", letter.upper()), ("a", "z", letter.lower())):
        below = f"{first}-{chr(ord(c) - 1)}" if c > first else ""
        above = f"{chr(ord(c) + 1)}-{last}" if c < last else ""
        chars = chars.replace(f"{first}-{last}", below + above)
    return f"[{chars}]"


# `wait` in any case, and every other token, spelled out: JSON Schema patterns have no flags, and
# a lookahead would make schemathesis generate values by trial and error.
_WAIT = "[Ww][Aa][Ii][Tt]"
_NOT_WAIT = (
    f"(?:{_T}{{1,3}}|{_T}{{5,}}|{_other('w')}{_T}{{3}}|[Ww]{_other('a')}{_T}{{2}}"
    f"|[Ww][Aa]{_other('i')}{_T}|[Ww][Aa][Ii]{_other('t')})"
)
_PARAM = f"{_OWS};(?:{_OWS}{_TOKEN}{_VALUE})?"
_NEXT = f"(?:{_OWS},)+{_OWS}"  # a separator, and any empty list elements (RFC 7230 section 7)
_OTHER_PREF, _WAIT_PREF, _ANY_PREF = (
    f"{_NOT_WAIT}{_VALUE}",
    f"{_WAIT}{_WAIT_VALUE}",
    f"{_TOKEN}{_VALUE}",
)
# Preferences other than `wait`, then maybe a valid `wait` and anything after it. Each preference's
# parameters and the next preference come in one flat repetition rather than a list in a list (the
# same language): generators such as schemathesis then draw short values, and quickly. There is no
# leading or trailing whitespace: HTTP strips it from a field value (RFC 7230 section 3.2.4).
PREFER_PATTERN = (
    f"^(?:,{_OWS})*(?:{_OTHER_PREF}(?:{_PARAM}|{_NEXT}{_OTHER_PREF})*"
    f"(?:{_NEXT}{_WAIT_PREF}(?:{_PARAM}|{_NEXT}{_ANY_PREF})*)?"
    f"|{_WAIT_PREF}(?:{_PARAM}|{_NEXT}{_ANY_PREF})*)(?:{_OWS},)*$"
)

_OWS_RE = re.compile(_OWS)
_TOKEN_RE = re.compile(_TOKEN)
_WORD_RE = re.compile(_WORD)
_SECONDS_RE = re.compile(_SECONDS)


@dataclass(frozen=True, slots=True)
class Preference:
    name: str  # lower case
    value: str  # as sent (a quoted string keeps its quotes); "" for none


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def ows(self) -> None:
        match = _OWS_RE.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos

    def take(self, char: str) -> bool:
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def grab(self, pattern: re.Pattern[str]) -> str | None:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def value(self) -> str:
        """`[OWS = OWS [word]]` after a name; "" when absent."""
        start = self.pos
        self.ows()
        if not self.take("="):
            self.pos = start
            return ""
        self.ows()
        return self.grab(_WORD_RE) or ""

    def separator(self) -> bool:
        """One or more commas (with whitespace around them) before the next element."""
        start = self.pos
        self.ows()
        if not self.take(","):
            self.pos = start
            return False
        while True:
            self.ows()
            if not self.take(","):
                return True


def preferences(header: str) -> list[Preference] | None:
    """Every preference in order, or None when `header` is not an RFC 7240 list."""
    scan = _Scanner(header)
    found: list[Preference] = []
    scan.ows()
    while scan.take(","):
        scan.ows()
    while True:
        name = scan.grab(_TOKEN_RE)
        if name is None:
            return None
        found.append(Preference(name.lower(), scan.value()))
        while True:  # parameters: ignored
            start = scan.pos
            scan.ows()
            if not scan.take(";"):
                scan.pos = start
                break
            start = scan.pos
            scan.ows()
            if scan.grab(_TOKEN_RE) is None:
                scan.pos = start
            else:
                scan.value()
        if not scan.separator():
            break
        if scan.pos == len(header):
            return found  # trailing empty elements
    scan.ows()
    return found if scan.pos == len(header) else None


@dataclass(frozen=True, slots=True)
class Wait:
    """Sync mode as asked for: `seconds`, and whether they were given (`wait=N`)."""

    seconds: int
    given: bool

    def applied(self) -> str:
        """The `Preference-Applied` value: `wait` or `wait=N`, whatever else `Prefer` held."""
        return f"wait={self.seconds}" if self.given else "wait"


def prefer_wait(headers: list[str]) -> Wait | None:
    """What `Prefer: wait` asks for (60 s with no value), or None without a `wait`.

    `headers` are every `Prefer` line of the request; together they are one list.
    """
    if not headers:
        return None
    joined = ", ".join(headers)
    found = preferences(joined)
    if found is None:
        raise BadRequest(f"Invalid Prefer header {joined[:60]!r}: not a list of preferences.")
    wait = next((p for p in found if p.name == "wait"), None)
    if wait is None:
        return None
    value = wait.value[1:-1] if wait.value.startswith('"') else wait.value
    if not value:
        return Wait(MAX_WAIT, given=False)
    if not _SECONDS_RE.fullmatch(value):
        raise BadRequest(
            f"Invalid Prefer header {joined[:60]!r}: use `wait` or `wait=N`, N from 1 to 60."
        )
    return Wait(int(value), given=True)


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
