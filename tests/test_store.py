"""The in-memory store: occurrences, pages newest first, eviction, reset."""

from __future__ import annotations

from datetime import timedelta

from mock_server.models import Prediction
from mock_server.store import MemoryStore, Page
from tests.records import T0, prediction


def make(n: int, owner: str = "o", minute: int | None = None) -> Prediction:
    """Record n, created at T0 + `minute` minutes (n minutes by default)."""
    at = T0 + timedelta(minutes=n if minute is None else minute)
    return prediction(id=f"{n:026d}", owner=owner, input={"prompt": str(n)}, created_at=at)


def prompts(page: list[Prediction]) -> list[int]:
    return [int(p.input["prompt"]) for p in page]


def test_occurrences_count_per_key() -> None:
    store = MemoryStore()
    assert [store.next_occurrence("a") for _ in range(3)] == [0, 1, 2]
    assert store.next_occurrence("b") == 0


def test_pages_are_newest_first_and_link_both_ways() -> None:
    store = MemoryStore()
    for n in range(250):
        store.add(make(n, owner="o" if n % 2 == 0 else "other"))
    first = store.page("o", limit=100)
    assert [p.input["prompt"] for p in first.results[:2]] == ["248", "246"]
    assert first.previous_after is None
    assert first.next_before is not None
    second = store.page("o", before=first.next_before, limit=100)
    assert len(second.results) == 25
    assert second.next_before is None
    assert second.previous_after is not None
    back = store.page("o", after=second.previous_after, limit=100)
    assert [p.id for p in back.results] == [p.id for p in first.results]
    assert {p.owner for p in first.results + second.results} == {"o"}


def test_eviction_drops_the_oldest_beyond_the_limit() -> None:
    store = MemoryStore(max_predictions=10)
    for n in range(15):
        store.add(make(n))
    assert store.count() == 10
    assert store.get(f"{0:026d}") is None
    assert store.get(f"{14:026d}") is not None
    assert len(store.page("o").results) == 10


def test_reset_forgets_everything() -> None:
    store = MemoryStore()
    store.add(make(1))
    store.next_occurrence("k")
    store.reset()
    assert store.count() == 0
    assert store.page("o").results == []
    assert store.next_occurrence("k") == 0


def test_window_is_inclusive_after_and_exclusive_before() -> None:
    store = MemoryStore()
    for n in range(10):
        store.add(make(n))
    at = T0 + timedelta(minutes=3)
    assert prompts(store.page("o", created_after=at).results) == [9, 8, 7, 6, 5, 4, 3]
    assert prompts(store.page("o", created_before=at).results) == [2, 1, 0]
    window = store.page("o", created_after=at, created_before=at + timedelta(minutes=2))
    assert prompts(window.results) == [4, 3]
    assert window.next_before is None
    assert window.previous_after is None


def test_window_pages_link_both_ways() -> None:
    store = MemoryStore()
    for n in range(500):
        store.add(make(n, owner="o" if n % 2 == 0 else "other"))
    after, before = T0 + timedelta(minutes=100), T0 + timedelta(minutes=400)

    def page(**cursor: int | None) -> Page:
        return store.page("o", limit=100, created_after=after, created_before=before, **cursor)

    first = page()
    assert prompts(first.results)[:2] == [398, 396]
    assert first.previous_after is None
    second = page(before=first.next_before)
    assert prompts(second.results) == list(range(198, 98, -2))
    assert second.next_before is None
    back = page(after=second.previous_after)
    assert back.results == first.results
    assert back.previous_after is None
    assert back.next_before == first.next_before


def test_window_follows_creation_times_not_order() -> None:
    """A manual clock may be set back: creation order and creation time then disagree."""
    store = MemoryStore()
    for n, minute in enumerate([50, 10, 60, 20, 70, 30]):
        store.add(make(n, minute=minute))
    late = store.page("o", created_after=T0 + timedelta(minutes=40), limit=2)
    assert prompts(late.results) == [4, 2]
    assert late.next_before is not None
    assert prompts(
        store.page("o", before=late.next_before, created_after=T0 + timedelta(minutes=40)).results
    ) == [0]
    early = store.page("o", created_before=T0 + timedelta(minutes=40))
    assert prompts(early.results) == [5, 3, 1]


def test_empty_window() -> None:
    store = MemoryStore()
    for n in range(5):
        store.add(make(n))
    page = store.page("o", created_after=T0 + timedelta(days=1))
    assert page.results == []
    assert page.next_before is None
    assert page.previous_after is None
