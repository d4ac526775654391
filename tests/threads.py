"""Blocking client calls in live tests, bounded so a bug fails the test instead of hanging it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def bounded(call: Callable[[], T], timeout: float) -> T:
    """Run `call` in a daemon thread; fail (never hang) if it takes longer than `timeout`."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"client call did not return within {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
