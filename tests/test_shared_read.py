"""SharedRead (redis_store.connection): one round trip serves every request that asked while the
previous one was out, and no request is answered by a read that started before it asked."""

from __future__ import annotations

import asyncio

import pytest

from mock_server.redis_store.connection import SharedRead


class Source:
    """A value that a test changes, read through a gate the test opens."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def fetch(self) -> int:
        self.reads += 1
        value = self.value  # what the read sees is what was there when it started
        await self.gate.wait()
        self.gate.clear()
        if self.fail is not None:
            raise self.fail
        return value


async def settled() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_callers_that_ask_together_share_one_read() -> None:
    async def main() -> None:
        source = Source()
        read = SharedRead(source.fetch)
        waiters = [asyncio.create_task(read()) for _ in range(20)]
        await settled()
        source.gate.set()
        assert await asyncio.gather(*waiters) == [0] * 20
        assert source.reads == 1

    asyncio.run(main())


def test_a_caller_never_gets_a_read_that_started_before_it_asked() -> None:
    async def main() -> None:
        source = Source()
        read = SharedRead(source.fetch)
        early = asyncio.create_task(read())
        await settled()  # the first read is out, having seen 0
        source.value = 1  # a change another process made...
        late = [asyncio.create_task(read()) for _ in range(5)]  # ...before these asked
        await settled()
        source.gate.set()
        assert await early == 0
        await settled()
        assert not any(t.done() for t in late)  # they wait for the next read
        source.gate.set()
        assert await asyncio.gather(*late) == [1] * 5
        assert source.reads == 2

    asyncio.run(main())


def test_a_failed_read_fails_every_caller_and_the_next_one_reads_again() -> None:
    async def main() -> None:
        source = Source()
        read = SharedRead(source.fetch)
        source.fail = ConnectionError("redis away")
        waiters = [asyncio.create_task(read()) for _ in range(3)]
        await settled()
        source.gate.set()
        for waiter in waiters:
            with pytest.raises(ConnectionError, match="redis away"):
                await waiter
        source.fail, source.value = None, 7
        again = asyncio.create_task(read())
        await settled()
        source.gate.set()
        assert await again == 7

    asyncio.run(main())
