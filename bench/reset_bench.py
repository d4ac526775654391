"""How long `POST /__admin/reset` takes with 100,000 stored predictions, beside a baseline:
clearing a plain dict holding as many equal records (the least any reset can cost, since the
records must be freed either way).

    python bench/reset_bench.py [--predictions 100000] [--rounds 5]

Three figures per round: the baseline, `AppContext.reset()` called directly, and the HTTP call
through Starlette's TestClient (the same reset plus one request's overhead). The suite only
checks that a reset leaves no predictions; the time is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.models import Prediction
from mock_server.store import PredictionStore

CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def record(i: int) -> Prediction:
    return Prediction(
        id=f"p{i:025d}",
        owner=f"owner{i % 8}",
        model="black-forest-labs/flux-schnell",
        input={"prompt": f"prompt {i}"},
        created_at=CREATED,
        setup_s=0.2,
        predict_s=0.83,
        width=1024,
        height=1024,
        fmt="webp",
        quality=80,
        outputs=1,
    )


def fill(store: PredictionStore, n: int) -> None:
    async def add_all() -> int:
        for i in range(n):
            await store.add(record(i))
        return await store.count()

    assert asyncio.run(add_all()) == n


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = action()
    if inspect.iscoroutine(result):
        asyncio.run(result)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.predictions

    app = create_app(Settings(max_predictions=max(n, 1)), clock=ManualClock())
    ctx = app.state.ctx
    rows: dict[str, list[float]] = {"dict.clear() baseline": [], "ctx.reset()": [], "HTTP": []}
    with TestClient(app) as client:
        for _ in range(args.rounds):
            baseline = {f"p{i:025d}": record(i) for i in range(n)}
            rows["dict.clear() baseline"].append(timed_ms(baseline.clear))

            fill(ctx.store, n)
            rows["ctx.reset()"].append(timed_ms(ctx.reset))
            assert asyncio.run(ctx.store.count()) == 0

            fill(ctx.store, n)
            ms = timed_ms(lambda: client.post("/__admin/reset").raise_for_status())
            rows["HTTP"].append(ms)
            assert asyncio.run(ctx.store.count()) == 0

    print(f"reset with {n:,} stored predictions, {args.rounds} rounds (ms)")
    print(f"{'':24} {'min':>8} {'median':>8} {'max':>8}")
    for name, values in rows.items():
        print(f"{name:24} {min(values):8.2f} {statistics.median(values):8.2f} {max(values):8.2f}")
    base = statistics.median(rows["dict.clear() baseline"])
    for name in ("ctx.reset()", "HTTP"):
        print(f"{name} / baseline: {statistics.median(rows[name]) / base:.2f}x")


if __name__ == "__main__":
    main()
