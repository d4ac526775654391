"""Finished predictions' JSON bodies, kept once encoded: a finished prediction never changes, so
a client polling it (or listing it) is answered from here. Bounded, least recently used first;
emptied by a reset (ids start over)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

MAX_BODIES = 8192  # about 10 MB of JSON at most


class FinishedBodies:
    def __init__(self, limit: int = MAX_BODIES) -> None:
        self.limit = limit
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        self._bodies[key] = body
        if len(self._bodies) > self.limit:
            self._bodies.popitem(last=False)

    def clear(self) -> None:
        self._bodies.clear()
