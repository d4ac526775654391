"""Both stores, the same tests: occurrences, pages newest first, time windows, eviction, reset,
per-owner reset. The Redis store runs against a real redis-server started for the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from mock_server.models import Prediction
from mock_server.redis_store.connection import Keys, connect
from mock_server.redis_store.predictions import RedisStore
from mock_server.store import MemoryStore, Page, PredictionStore
from tests.records import T0, prediction
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

MakeStore = Callable[..., PredictionStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """`make_store(max_predictions=...)`: a fresh store of the parameter's kind."""
    if request.param == "memory":
        yield lambda max_predictions=200_000: MemoryStore(max_predictions)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    clients = []

    def make(max_predictions: int = 200_000) -> PredictionStore:
        client = connect(server.url, 5.0)
        clients.append(client)
        return RedisStore(client, server.url, max_predictions, Keys())

    yield make
    for client in clients:
        await client.aclose()


def make(n: int, owner: str = "o", minute: int | None = None) -> Prediction:
    """Record n, created at T0 + `minute` minutes (n minutes by default)."""
    at = T0 + timedelta(minutes=n if minute is None else minute)
    return prediction(id=f"{n:026d}", owner=owner, input={"prompt": str(n)}, created_at=at)


def prompts(page: list[Prediction]) -> list[int]:
    return [int(p.input["prompt"]) for p in page]


async def test_occurrences_count_per_key(make_store: MakeStore) -> None:
    store = make_store()
    assert [await store.next_occurrence("o", "a") for _ in range(3)] == [0, 1, 2]
    assert await store.next_occurrence("o", "b") == 0


class Builds:
    """A create's `build`: record `occurrence` of one request key; remembers each call."""

    def __init__(self, owner: str = "o") -> None:
        self.owner = owner
        self.calls: list[int] = []

    def __call__(self, occurrence: int) -> Prediction:
        self.calls.append(occurrence)
        n = 1000 + occurrence
        return prediction(id=f"{n:026d}", owner=self.owner, input={"prompt": str(n)})


async def test_create_counts_and_adds_in_one_step(make_store: MakeStore) -> None:
    store = make_store()
    builds = Builds()
    made = [await store.create("o", "k", builds) for _ in range(3)]
    assert [p.id for p in made] == [f"{n:026d}" for n in (1000, 1001, 1002)]
    assert builds.calls == [0, 1, 2]
    assert [(await store.get(p.id)) is not None for p in made] == [True] * 3
    assert await store.next_occurrence("o", "k") == 3  # one count, the same as next_occurrence's
    assert await store.create("o", "other", Builds()) is not None


async def test_a_create_whose_occurrence_another_process_took_is_built_again(
    make_store: MakeStore,
) -> None:
    """Two stores on one Redis (two processes): each guesses the next occurrence from its own
    creates, and a stale guess is corrected, never stored twice."""
    a, b = make_store(), make_store()
    if a.kind == "memory":  # one memory store is one process
        b = a
    first, second, third = Builds(), Builds(), Builds()
    await a.create("o", "k", first)  # 0
    await b.create("o", "k", second)  # b guessed 0: taken, built again for 1
    await a.create("o", "k", third)  # a guessed 1: taken, built again for 2
    assert first.calls == [0]
    assert second.calls == ([0, 1] if a is not b else [1])
    assert third.calls == ([1, 2] if a is not b else [2])
    page = await a.page("o")
    assert sorted(p.id for p in page.results) == [f"{n:026d}" for n in (1000, 1001, 1002)]


async def test_pages_are_newest_first_and_link_both_ways(make_store: MakeStore) -> None:
    store = make_store()
    for n in range(250):
        await store.add(make(n, owner="o" if n % 2 == 0 else "other"))
    first = await store.page("o", limit=100)
    assert [p.input["prompt"] for p in first.results[:2]] == ["248", "246"]
    assert first.previous_after is None
    assert first.next_before is not None
    second = await store.page("o", before=first.next_before, limit=100)
    assert len(second.results) == 25
    assert second.next_before is None
    assert second.previous_after is not None
    back = await store.page("o", after=second.previous_after, limit=100)
    assert [p.id for p in back.results] == [p.id for p in first.results]
    assert {p.owner for p in first.results + second.results} == {"o"}


async def test_eviction_drops_the_oldest_beyond_the_limit(make_store: MakeStore) -> None:
    store = make_store(max_predictions=10)
    for n in range(15):
        await store.add(make(n))
    assert await store.count() == 10
    assert await store.get(f"{0:026d}") is None
    assert await store.get(f"{14:026d}") is not None
    assert len((await store.page("o")).results) == 10


async def test_reset_forgets_everything(make_store: MakeStore) -> None:
    store = make_store()
    await store.add(make(1))
    await store.next_occurrence("o", "k")
    await store.reset()
    assert await store.count() == 0
    assert (await store.page("o")).results == []
    assert await store.next_occurrence("o", "k") == 0


async def test_window_is_inclusive_after_and_exclusive_before(make_store: MakeStore) -> None:
    store = make_store()
    for n in range(10):
        await store.add(make(n))
    at = T0 + timedelta(minutes=3)
    assert prompts((await store.page("o", created_after=at)).results) == [9, 8, 7, 6, 5, 4, 3]
    assert prompts((await store.page("o", created_before=at)).results) == [2, 1, 0]
    window = await store.page("o", created_after=at, created_before=at + timedelta(minutes=2))
    assert prompts(window.results) == [4, 3]
    assert window.next_before is None
    assert window.previous_after is None


async def test_window_pages_link_both_ways(make_store: MakeStore) -> None:
    store = make_store()
    for n in range(500):
        await store.add(make(n, owner="o" if n % 2 == 0 else "other"))
    after, before = T0 + timedelta(minutes=100), T0 + timedelta(minutes=400)

    async def page(**cursor: int | None) -> Page:
        return await store.page(
            "o", limit=100, created_after=after, created_before=before, **cursor
        )

    first = await page()
    assert prompts(first.results)[:2] == [398, 396]
    assert first.previous_after is None
    second = await page(before=first.next_before)
    assert prompts(second.results) == list(range(198, 98, -2))
    assert second.next_before is None
    back = await page(after=second.previous_after)
    assert back.results == first.results
    assert back.previous_after is None
    assert back.next_before == first.next_before


async def test_window_follows_creation_times_not_order(make_store: MakeStore) -> None:
    """A manual clock may be set back: creation order and creation time then disagree."""
    store = make_store()
    for n, minute in enumerate([50, 10, 60, 20, 70, 30]):
        await store.add(make(n, minute=minute))
    late = await store.page("o", created_after=T0 + timedelta(minutes=40), limit=2)
    assert prompts(late.results) == [4, 2]
    assert late.next_before is not None
    assert prompts(
        (
            await store.page("o", before=late.next_before, created_after=T0 + timedelta(minutes=40))
        ).results
    ) == [0]
    early = await store.page("o", created_before=T0 + timedelta(minutes=40))
    assert prompts(early.results) == [5, 3, 1]


async def test_empty_window(make_store: MakeStore) -> None:
    store = make_store()
    for n in range(5):
        await store.add(make(n))
    page = await store.page("o", created_after=T0 + timedelta(days=1))
    assert page.results == []
    assert page.next_before is None
    assert page.previous_after is None


async def test_reset_of_one_owner_keeps_the_others(make_store: MakeStore) -> None:
    store = make_store()
    for n in range(6):
        await store.add(make(n, owner="a" if n % 2 == 0 else "b"))
    await store.next_occurrence("a", "k")
    await store.next_occurrence("b", "k")
    await store.reset("a")
    assert (await store.page("a")).results == []
    assert prompts((await store.page("b")).results) == [5, 3, 1]
    assert prompts((await store.page(None)).results) == [5, 3, 1]
    assert await store.count() == 3
    assert await store.get(f"{0:026d}") is None
    assert await store.next_occurrence("a", "k") == 0  # its ids start over
    assert await store.next_occurrence("b", "k") == 1


async def test_saved_changes_are_read_back(make_store: MakeStore) -> None:
    store = make_store()
    p = await store.add(make(1))
    p.canceled_at = T0 + timedelta(minutes=5)
    p.reads = 2
    await store.save(p)
    got = await store.get(p.id)
    assert got is not None
    assert got.canceled_at == T0 + timedelta(minutes=5)
    assert got.reads == 2
    assert got.seq == p.seq
    assert got.input == {"prompt": "1"}


async def test_a_create_that_keeps_missing_counts_first(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After GUESSES misses (many processes creating the same request at once) a create counts
    with a round trip of its own, then adds: the same occurrences."""
    from mock_server.redis_store import predictions

    monkeypatch.setattr(predictions, "GUESSES", 0)
    store = make_store()
    builds = Builds()
    made = [await store.create("o", "k", builds) for _ in range(3)]
    assert builds.calls == [0, 1, 2]
    assert [p.id for p in made] == [f"{n:026d}" for n in (1000, 1001, 1002)]
