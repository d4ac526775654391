"""Cursor pages over records kept in creation order, newest first, as the API's lists show them
(predictions and files): `b<n>` is the page older than position n, `a<n>` the page newer."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from mock_server.errors import BadRequest

_CURSOR = re.compile(r"^([ab])([0-9]{1,18})$")


def parse_cursor(cursor: str) -> tuple[int | None, int | None]:
    """(before, after) from a `cursor` query parameter; 400 for anything else."""
    match = _CURSOR.match(cursor)
    if match is None:
        raise BadRequest("The cursor is not valid.")
    value = int(match.group(2))
    return (value, None) if match.group(1) == "b" else (None, value)


@dataclass(frozen=True, slots=True)
class Slice:
    seqs: list[int]  # newest first
    next_before: int | None  # pass as `before` for the next (older) page
    previous_after: int | None  # pass as `after` for the previous (newer) page


def slice_page(seqs: list[int], before: int | None, after: int | None, limit: int) -> Slice:
    """One page of `seqs` (ascending positions), older than `before` or newer than `after`."""
    if after is not None:
        lo = bisect.bisect_right(seqs, after)
        chosen = seqs[lo : lo + limit]
        hi = lo + len(chosen)
    else:
        hi = len(seqs) if before is None else bisect.bisect_left(seqs, before)
        lo = max(0, hi - limit)
        chosen = seqs[lo:hi]
    return Slice(
        seqs=chosen[::-1],
        next_before=chosen[0] if chosen and lo > 0 else None,
        previous_after=chosen[-1] if chosen and hi < len(seqs) else None,
    )
