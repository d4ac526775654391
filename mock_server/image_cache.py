"""Rendered output files: a bounded LRU by bytes; renders run off the event loop, once per key."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

import anyio.to_thread


class ImageCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0

    def peek(self, key: str) -> bytes | None:
        """The rendered file if it is cached (as recently used), else None; never renders."""
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    async def get(self, key: str, render: Callable[[], bytes]) -> bytes:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
            return data
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            data = await anyio.to_thread.run_sync(render)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(data)
        self._put(key, data)
        return data

    def _put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        self._items[key] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.size -= len(old)
