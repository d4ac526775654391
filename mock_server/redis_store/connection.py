"""The Redis connection: one client (a connection pool) per process, key names, and the one place
that turns "Redis does not answer" into StoreUnavailable (503)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response

from mock_server.errors import StoreUnavailable, problem_response
from mock_server.paging import Slice

P = ParamSpec("P")
Queue = Callable[[Any], Awaitable[Any]]  # queues one command on a pipeline (Pipelined)
T = TypeVar("T")
PREFIX = "mock-server:"  # every key this server writes starts with it
DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(url: str, timeout: float) -> Any:
    """A client whose every command gives up after `timeout` seconds (a stopped Redis must not
    hold requests), retrying once only a connection the server closed (a pooled one gone stale)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
        decode_responses=False,
        health_check_interval=0,
    )


def where(url: str) -> str:
    """host:port/db of a redis:// URL, without any password, for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


class Keys:
    """Key names, all under PREFIX."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


def guarded(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis down or too slow -> StoreUnavailable, naming the server (the object's `url`)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except DOWN as exc:
            url = getattr(args[0], "url", "") if args else ""
            raise unavailable(url, exc) from None

    return wrapper


def down_handler(url: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return problem_response(unavailable(url, exc))

    return handle


def unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    reason = str(exc) or type(exc).__name__
    return StoreUnavailable(
        f"The store (Redis at {where(url)}) is unreachable: {reason}. Nothing was half written; "
        "retry once it is back."
    )


async def scan_delete(client: Any, *patterns: str) -> None:
    """Delete every key matching the patterns (a reset; small batches, never KEYS)."""
    for pattern in patterns:
        batch: list[Any] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)


async def cursor_page(
    client: Any, index: str, before: int | None, after: int | None, limit: int
) -> tuple[list[bytes], Slice]:
    """One page of a sorted set of ids scored by creation order, newest first, as
    paging.slice_page gives it for a list: the ids and the positions either side."""
    if after is not None:
        found = await client.zrangebyscore(
            index, f"({after}", "+inf", start=0, num=limit + 1, withscores=True
        )
        chosen = [(i, int(s)) for i, s in found[:limit]]
        more_newer = len(found) > limit
        more_older = bool(chosen) and await client.zcount(index, "-inf", f"({chosen[0][1]}") > 0
        chosen.reverse()  # newest first
    else:
        top = "+inf" if before is None else f"({before}"
        found = await client.zrevrangebyscore(
            index, top, "-inf", start=0, num=limit + 1, withscores=True
        )
        chosen = [(i, int(s)) for i, s in found[:limit]]
        more_older = len(found) > limit
        more_newer = bool(chosen) and await client.zcount(index, f"({chosen[0][1]}", "+inf") > 0
    return [i for i, _ in chosen], Slice(
        seqs=[s for _, s in chosen],
        next_before=chosen[-1][1] if chosen and more_older else None,
        previous_after=chosen[0][1] if chosen and more_newer else None,
    )


class SharedRead(Generic[T]):
    """One read (such as the control hash) shared by the requests that want it at once: a
    request waits for the next read that starts after it arrived, never for one already in
    flight, so it sees every change made before it came in. Under load one round trip serves
    every request that arrived while the previous one was out."""

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._next: asyncio.Future[T] | None = None  # the read the newest arrivals wait for
        self._reader: asyncio.Task[None] | None = None

    async def __call__(self) -> T:
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            if self._reader is None or self._reader.done():
                self._reader = loop.create_task(self._read())
        return await asyncio.shield(self._next)

    async def _read(self) -> None:
        while self._next is not None:
            waiting, self._next = self._next, None
            try:
                result = await self._fetch()
            except asyncio.CancelledError:  # the loop is closing
                waiting.cancel()
                raise
            except BaseException as exc:  # every waiter gets it, as its own read would
                waiting.set_exception(exc)
                waiting.exception()  # retrieved: no warning if every waiter has gone
            else:
                waiting.set_result(result)


class Pipelined:
    """Commands run in the order they were asked: those asked while a pipeline is out go
    together in the next one, on one connection. Under load one round trip serves many
    requests, and commands asked one after the other in this process reach Redis in that
    order. Each call gives a coroutine function that queues one command on the pipeline."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queue: list[tuple[Queue, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, queue: Queue) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((queue, future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            futures = [future for _, future in batch]
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for queue, _ in batch:
                        await queue(pipe)
                    results = await pipe.execute(raise_on_error=False)
                for future, result in zip(futures, results, strict=True):
                    if isinstance(result, BaseException):
                        _fail(future, result)
                    else:
                        future.set_result(result)
            except asyncio.CancelledError:  # the loop is closing
                for future in futures:
                    future.cancel()
                raise
            except BaseException as exc:  # every call gets it, as its own round trip would
                for future in futures:
                    if not future.done():
                        _fail(future, exc)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: no warning if the caller has gone
