"""The emulator (memory store) with N finished predictions already stored, for get and create
latency against a large store.

    python -m bench.filled_server --count 1000000

Builds the app as `mock-server` does (`create_app(Settings(...))`, the default time scale), then
fills `app.state.ctx.store` directly with `count` finished flux-schnell predictions made the way
a create makes them (bench/store_bench.py's `build`: `_new_prediction`, one distinct prompt
each, time scale 0 so they are finished), owned by the bench token. Prints one line
`filled {json}` (the id of the middle prediction, the fill time, VmRSS before and after), then
serves the app like `mock-server` (bench/serve.py) and prints `listening on URL`.
`--max-predictions` (default count + 1,000,000) keeps creates made during the run from evicting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench.http_bench import TOKEN
from bench.serve import serve
from bench.store_bench import _CreateContext, build, flux_schnell, vm_rss
from mock_server.app import create_app
from mock_server.auth import owner_of
from mock_server.clock import SystemClock
from mock_server.config import Settings
from mock_server.store import PredictionStore


async def fill(store: PredictionStore, count: int) -> dict[str, Any]:
    fixture = flux_schnell()
    ctx = _CreateContext(Settings(time_scale=0), store, SystemClock())
    owner = owner_of(TOKEN)
    before = vm_rss()
    started = time.perf_counter()
    middle = ""
    for i in range(count):
        p = await build(ctx, fixture, owner, i)
        await store.add(p)
        if i == count // 2:
            middle = p.id
    elapsed = time.perf_counter() - started
    after = vm_rss()
    assert await store.count() == count
    return {
        "count": count,
        "middle_id": middle,
        "fill_seconds": elapsed,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_prediction": (after - before) / max(count, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--max-predictions", type=int)
    parser.add_argument("--time-scale", type=float, default=1.0)
    opts = parser.parse_args()
    limit = opts.max_predictions or opts.count + 1_000_000
    app = create_app(Settings(max_predictions=limit, time_scale=opts.time_scale))
    filled = asyncio.run(fill(app.state.ctx.store, opts.count))
    sys.stdout.write(f"filled {json.dumps(filled)}\n")
    sys.stdout.flush()
    return serve(app)


if __name__ == "__main__":
    raise SystemExit(main())
