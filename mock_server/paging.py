"""Cursor pages over records kept in creation order, newest first, as the API's lists show them
(predictions and files): `b<n>` is the page older than position n, `a<n>` the page newer."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

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


def window_slice(
    seqs: list[int],
    created: Callable[[int], datetime],
    before: int | None,
    after: int | None,
    limit: int,
    created_after: datetime | None,
    created_before: datetime | None,
) -> Slice:
    """A page of the records created in the window (`created_after` inclusive, `created_before`
    exclusive). Creation times follow creation order only while the clock runs forwards (a
    manual clock may be set back), so this walks the records from the cursor on, as far as it
    needs to, instead of bisecting on time."""

    def chosen(seq: int) -> bool:
        at = created(seq)
        return (created_after is None or at >= created_after) and (
            created_before is None or at < created_before
        )

    def walk(newer: bool, start: int | None) -> Iterator[int]:
        """Seqs in the window newer than `start` (oldest first), or older (newest first)."""
        if newer:
            lo = 0 if start is None else bisect.bisect_right(seqs, start)
            positions: Iterable[int] = range(lo, len(seqs))
        else:
            hi = len(seqs) if start is None else bisect.bisect_left(seqs, start)
            positions = range(hi - 1, -1, -1)
        return (seqs[i] for i in positions if chosen(seqs[i]))

    if after is not None:
        newer = walk(True, after)
        picked = list(itertools.islice(newer, limit))[::-1]  # newest first
        more_newer = next(newer, None) is not None
        more_older = bool(picked) and next(walk(False, picked[-1]), None) is not None
    else:
        older = walk(False, before)
        picked = list(itertools.islice(older, limit))
        more_older = next(older, None) is not None
        more_newer = bool(picked) and next(walk(True, picked[0]), None) is not None
    return Slice(
        seqs=picked,
        next_before=picked[-1] if more_older else None,
        previous_after=picked[0] if more_newer else None,
    )
