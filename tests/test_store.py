"""The in-memory store: occurrences, pages newest first, eviction, reset."""

from __future__ import annotations

from mock_server.models import Prediction
from mock_server.store import MemoryStore
from tests.records import prediction


def make(n: int, owner: str = "o") -> Prediction:
    return prediction(id=f"{n:026d}", owner=owner, input={"prompt": str(n)})


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
