"""Prediction storage behind one interface; the in-memory store is the default.

No HTTP and no clock here: the store keeps records, counts identical requests (for stable ids)
and pages through a caller's predictions, newest first.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mock_server.models import Prediction
from mock_server.paging import slice_page, window_slice


@dataclass(frozen=True, slots=True)
class Page:
    results: list[Prediction]
    next_before: int | None  # pass as `before` for the next (older) page
    previous_after: int | None  # pass as `after` for the previous (newer) page


class PredictionStore(Protocol):
    """Every method may raise StoreUnavailable (a shared store that cannot be reached)."""

    kind: str  # memory | redis
    finished: Callable[[Prediction], bool]  # which records may be evicted first

    async def next_occurrence(self, owner: str, key: str) -> int:
        """How many create requests with this key came before this one (then counts this one)."""
        ...

    async def add(self, prediction: Prediction) -> Prediction: ...

    async def create(self, owner: str, key: str, build: Callable[[int], Prediction]) -> Prediction:
        """Count one more create with this request key and add `build(occurrence)` (how many
        such creates came before), as one step: `build` may be called again if another process
        took the occurrence first."""
        ...

    async def get(self, prediction_id: str) -> Prediction | None: ...

    async def save(self, prediction: Prediction) -> None:
        """Persist a change to a record previously returned by `add` or `get` (its mutable
        fields: canceled_at, deadline, ends_at, outcome, error, reads)."""
        ...

    async def page(
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

    async def count(self) -> int: ...

    async def reset(self, owner: str | None = None) -> None:
        """Forget every record (only `owner`'s, when given) and its id counters."""
        ...

    def forget_kept(self) -> None:
        """Drop copies of shared records kept in this process (another process reset them)."""
        ...


class MemoryStore:
    """Dicts in this process. Past `max_predictions` records are evicted, the oldest finished
    one first (`finished` says which are; the context sets it from the clock)."""

    kind = "memory"
    LOOK_AHEAD = 64  # records looked at for a finished one before the oldest goes anyway

    def __init__(self, max_predictions: int = 200_000) -> None:
        self.max_predictions = max_predictions
        self.finished: Callable[[Prediction], bool] = lambda p: True
        self._clear()

    def _clear(self) -> None:
        self._by_id: OrderedDict[str, Prediction] = OrderedDict()
        self._seqs: defaultdict[str | None, list[int]] = defaultdict(list)  # None: everyone
        self._by_seq: dict[int, Prediction] = {}
        # Per owner, each request key's count, least recently used first. An owner keeps no more
        # keys than predictions (see _evict), so memory stays bounded however many creates come.
        self._occurrences: defaultdict[str, OrderedDict[str, int]] = defaultdict(OrderedDict)
        self._seq = 0

    async def reset(self, owner: str | None = None) -> None:
        if owner is None:
            self._clear()
            return
        for seq in self._seqs.pop(owner, []):
            gone = self._by_seq.pop(seq)
            del self._by_id[gone.id]
        everyone = self._seqs[None]
        everyone[:] = [s for s in everyone if s in self._by_seq]
        self._occurrences.pop(owner, None)

    async def next_occurrence(self, owner: str, key: str) -> int:
        counts = self._occurrences[owner]
        n = counts.pop(key, 0)
        counts[key] = n + 1  # now the most recently used
        return n

    async def create(self, owner: str, key: str, build: Callable[[int], Prediction]) -> Prediction:
        return await self.add(build(await self.next_occurrence(owner, key)))

    async def add(self, prediction: Prediction) -> Prediction:
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
        oldest = itertools.islice(self._by_id.values(), self.LOOK_AHEAD)
        old = next((p for p in oldest if self.finished(p)), None)
        if old is None:  # all running: memory is bounded all the same
            old = next(iter(self._by_id.values()))
        del self._by_id[old.id]
        del self._by_seq[old.seq]
        for key in (old.owner, None):
            seqs = self._seqs[key]
            del seqs[bisect.bisect_left(seqs, old.seq)]
        if not self._seqs[old.owner]:
            del self._seqs[old.owner]
        # Each create adds at most one key: dropping the least recently used one whenever an
        # owner has more keys than records keeps counts only for keys still in use. A forgotten
        # key's predictions have all been evicted, so a reissued id never names a stored record.
        counts = self._occurrences.get(old.owner)
        if counts is not None:
            if len(counts) > len(self._seqs.get(old.owner, ())):
                counts.popitem(last=False)
            if not counts:
                del self._occurrences[old.owner]

    async def get(self, prediction_id: str) -> Prediction | None:
        return self._by_id.get(prediction_id)

    async def save(self, prediction: Prediction) -> None:
        # Records are live objects here; a shared store (Redis) writes them back.
        if prediction.id in self._by_id:
            self._by_id[prediction.id] = prediction

    async def page(
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
            by_seq = self._by_seq
            page = window_slice(
                seqs,
                lambda s: by_seq[s].created_at,
                before,
                after,
                limit,
                created_after,
                created_before,
            )
        else:
            page = slice_page(seqs, before, after, limit)
        return Page(
            results=[self._by_seq[s] for s in page.seqs],
            next_before=page.next_before,
            previous_after=page.previous_after,
        )

    async def count(self) -> int:
        return len(self._by_id)

    def forget_kept(self) -> None:
        pass  # the records themselves live here
