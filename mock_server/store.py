"""Prediction storage behind one interface; the in-memory store is the default.

No HTTP and no clock here: the store keeps records, counts identical requests (for stable ids)
and pages through a caller's predictions, newest first.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mock_server.models import Prediction
from mock_server.paging import slice_page


@dataclass(frozen=True, slots=True)
class Page:
    results: list[Prediction]
    next_before: int | None  # pass as `before` for the next (older) page
    previous_after: int | None  # pass as `after` for the previous (newer) page


class PredictionStore(Protocol):
    def next_occurrence(self, key: str) -> int:
        """How many create requests with this key came before this one (then counts this one)."""
        ...

    def add(self, prediction: Prediction) -> Prediction: ...

    def get(self, prediction_id: str) -> Prediction | None: ...

    def save(self, prediction: Prediction) -> None:
        """Persist a change to a record previously returned by `add` or `get`."""
        ...

    def page(
        self,
        owner: str | None,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 100,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        """`owner`'s predictions (everyone's for None), newest first, older than `before` or
        newer than `after`; with a time window, only those created at or after `created_after`
        and before `created_before`."""
        ...

    def count(self) -> int: ...

    def reset(self) -> None: ...


class MemoryStore:
    """Dicts in this process. Past `max_predictions` the oldest records are evicted."""

    def __init__(self, max_predictions: int = 200_000) -> None:
        self.max_predictions = max_predictions
        self.reset()

    def reset(self) -> None:
        self._by_id: OrderedDict[str, Prediction] = OrderedDict()
        self._seqs: defaultdict[str | None, list[int]] = defaultdict(list)  # None: everyone
        self._by_seq: dict[int, Prediction] = {}
        self._occurrences: dict[str, int] = {}
        self._seq = 0

    def next_occurrence(self, key: str) -> int:
        n = self._occurrences.get(key, 0)
        self._occurrences[key] = n + 1
        return n

    def add(self, prediction: Prediction) -> Prediction:
        self._seq += 1
        prediction.seq = self._seq
        self._by_id[prediction.id] = prediction
        self._by_seq[prediction.seq] = prediction
        self._seqs[prediction.owner].append(prediction.seq)
        self._seqs[None].append(prediction.seq)
        while len(self._by_id) > self.max_predictions:
            self._evict()
        return prediction

    def _evict(self) -> None:
        _, old = self._by_id.popitem(last=False)
        del self._by_seq[old.seq]
        for key in (old.owner, None):
            seqs = self._seqs[key]
            del seqs[bisect.bisect_left(seqs, old.seq)]

    def get(self, prediction_id: str) -> Prediction | None:
        return self._by_id.get(prediction_id)

    def save(self, prediction: Prediction) -> None:
        # Records are live objects here; a shared store (Redis) writes them back.
        self._by_id[prediction.id] = prediction

    def page(
        self,
        owner: str | None,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 100,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page:
        seqs = self._seqs.get(owner, [])
        if created_after is not None or created_before is not None:
            return self._window_page(seqs, before, after, limit, created_after, created_before)
        page = slice_page(seqs, before, after, limit)
        return Page(
            results=[self._by_seq[s] for s in page.seqs],
            next_before=page.next_before,
            previous_after=page.previous_after,
        )

    def _window_page(
        self,
        seqs: list[int],
        before: int | None,
        after: int | None,
        limit: int,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> Page:
        """A page of the records created in the window. Creation times follow creation order
        only while the clock runs forwards (a manual clock may be set back), so this walks the
        records from the cursor on, as far as it needs to, instead of bisecting on time."""

        def chosen(p: Prediction) -> bool:
            return (created_after is None or p.created_at >= created_after) and (
                created_before is None or p.created_at < created_before
            )

        def walk(newer: bool, start: int | None) -> Iterator[int]:
            """Seqs in the window newer than `start` (oldest first), or older (newest first)."""
            if newer:
                lo = 0 if start is None else bisect.bisect_right(seqs, start)
                positions: Iterable[int] = range(lo, len(seqs))
            else:
                hi = len(seqs) if start is None else bisect.bisect_left(seqs, start)
                positions = range(hi - 1, -1, -1)
            return (seqs[i] for i in positions if chosen(self._by_seq[seqs[i]]))

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
        return Page(
            results=[self._by_seq[s] for s in picked],
            next_before=picked[-1] if more_older else None,
            previous_after=picked[0] if more_newer else None,
        )

    def count(self) -> int:
        return len(self._by_id)
