"""Memory per stored prediction and HTTP cost of the two stores (memory, Redis), in one run.

    python bench/store_bench.py [--seconds 5] [--connections 32] [--count 100000]

1. Memory store: a fresh child process builds `--count` finished flux-schnell predictions the way
   a create does (`_new_prediction`, one short distinct prompt each, `next_occurrence` then
   `add`) and reports (VmRSS after - VmRSS before) / count, both read after gc.collect().
2. Redis store: a private `redis-server` (loopback, free port, temp dir, no persistence) gets as
   many, built the same way and written with `RedisStore`'s own commands (its create script and
   occurrence counter, pipelined); (used_memory after - before) / count from INFO memory.
3. wrk, as http_bench.py runs it: create and get of a finished prediction on the emulator with
   each store (`--time-scale 0`), beside the bare Starlette baseline (baseline_app.py). Each
   server runs alone while it is measured.

Prints a table and writes bench/results/store_bench.json. Every child process (servers, Redis,
the memory child) is stopped at the end, on error too. Absolute numbers depend on the machine;
the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a file: make `bench` and `mock_server` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_bench import ROOT, TOKEN, free_port, lua_script, start, wrk
from mock_server.auth import owner_of
from mock_server.clock import SystemClock
from mock_server.config import Settings
from mock_server.context import AppContext
from mock_server.fixtures import ModelFixture, load_fixtures
from mock_server.models import Prediction
from mock_server.routes.predictions import _new_prediction
from mock_server.store import MemoryStore, PredictionStore
from mock_server.webhooks import events_filter

MODEL = "black-forest-labs/flux-schnell"
CREATE_BODY = json.dumps({"input": {"prompt": "a cat"}})
RESULTS = ROOT / "bench" / "results" / "store_bench.json"
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_BATCH = 1000  # creates per pipeline while filling Redis
UVICORN = ["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]


@dataclass
class _CreateContext:
    """What `_new_prediction` reads from an AppContext: settings, store and clock."""

    settings: Settings
    store: PredictionStore
    clock: SystemClock


def prompt(i: int) -> str:
    return f"a cat, take {i}"


async def build(ctx: _CreateContext, fixture: ModelFixture, owner: str, i: int) -> Prediction:
    """The record `_create` stores for {"input": {"prompt": prompt(i)}}: `_new_prediction` (which
    counts the request key in the store), then the create's own fields (no webhook, so the
    default events filter; no scenario, no Cancel-After)."""
    p = await _new_prediction(cast(AppContext, ctx), owner, fixture, {"prompt": prompt(i)})
    p.webhook = None
    p.webhook_events_filter = events_filter(None)
    return p


async def create_one(ctx: _CreateContext, fixture: ModelFixture, owner: str, i: int) -> None:
    """A create's store work: the record as the route builds it, then `add`."""
    await ctx.store.add(await build(ctx, fixture, owner, i))


def flux_schnell() -> ModelFixture:
    return load_fixtures(Settings().fixtures_dir)[MODEL]


# --- 1. memory store, in a child process -------------------------------------------------------


def vm_rss() -> int:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def memory_child(count: int) -> dict[str, Any]:
    fixture = flux_schnell()
    store = MemoryStore(max_predictions=max(count, 1))
    ctx = _CreateContext(Settings(time_scale=0), store, SystemClock())
    owner = owner_of(TOKEN)
    await create_one(ctx, fixture, owner, -1)  # first-use allocations stay out of the figure
    await store.reset()
    before = vm_rss()
    started = time.perf_counter()
    for i in range(count):
        await create_one(ctx, fixture, owner, i)
    elapsed = time.perf_counter() - started
    after = vm_rss()
    assert await store.count() == count
    return {
        "count": count,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_prediction": (after - before) / count,
        "fill_seconds": elapsed,
    }


def measure_memory_store(count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-child", "--count", str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"the memory child failed:\n{done.stderr}")
    return cast(dict[str, Any], json.loads(done.stdout.strip().splitlines()[-1]))


# --- 2. Redis store ----------------------------------------------------------------------------


def start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    return start(args, port)


class _CountLater:
    """Stands in for the Redis store while `_new_prediction` builds a batch of records: each
    create's `next_occurrence` is then sent in a pipeline, the same HINCRBY the store sends."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []

    async def next_occurrence(self, owner: str, key: str) -> int:
        self.keys.append((owner, key))
        return 0  # distinct prompts in an emptied Redis: checked against the HINCRBY replies


async def fill_redis(store: Any, fixture: ModelFixture, first: int, last: int) -> list[Any]:
    """Predictions first..last-1 as creates make them, written by the store's own create script
    (`RedisStore.add`'s keys and arguments), one pipeline per batch instead of two round trips
    per record: the same keys and values, about three times sooner."""
    from mock_server.redis_store.records import prediction_parts

    counter = _CountLater()
    ctx = _CreateContext(Settings(time_scale=0, store=store.url), cast(Any, counter), SystemClock())
    owner = owner_of(TOKEN)
    made = [await build(ctx, fixture, owner, i) for i in range(first, last)]
    k = store.key
    async with store.client.pipeline(transaction=False) as pipe:
        for (who, key), p in zip(counter.keys, made, strict=True):
            pipe.hincrby(k("occ", who), key, 1)
            fixed, mutable = prediction_parts(p)
            await store._add(
                keys=[k("seq"), k("all"), k("idx", p.owner), k("p", p.id)],
                args=[p.id, fixed, mutable, p.owner, store.max_predictions, k("")],
                client=pipe,
            )
        replies = await pipe.execute()
    assert all(int(n) == 1 for n in replies[0::2]), "a request key was counted before"
    for p, seq in zip(made, replies[1::2], strict=True):
        p.seq = int(seq)
    return made


async def measure_redis_store(url: str, count: int) -> dict[str, Any]:
    from mock_server.redis_store.connection import Keys, connect
    from mock_server.redis_store.predictions import RedisStore

    client = connect(url, 5.0)
    try:
        await client.flushall()
        store = RedisStore(client, url, max(count, 1), Keys())
        fixture = flux_schnell()
        await fill_redis(store, fixture, -10, 0)  # connect, load the script
        await client.flushall()
        before = await client.info("memory")
        started = time.perf_counter()
        samples = []
        for first in range(0, count, REDIS_BATCH):
            made = await fill_redis(store, fixture, first, min(first + REDIS_BATCH, count))
            samples.append(made[-1])
        elapsed = time.perf_counter() - started
        after = await client.info("memory")
        # What the pipelines wrote is what the store reads back, and counts as it would.
        assert await store.count() == count
        for p in samples[:: max(1, len(samples) // 10)]:
            assert await store.get(p.id) == p, p.id
        server = await client.info("server")
        await client.flushall()
    finally:
        await client.aclose()
    used = after["used_memory"] - before["used_memory"]
    dataset = after["used_memory_dataset"] - before["used_memory_dataset"]
    return {
        "count": count,
        "redis_version": server["redis_version"],
        "used_memory_before": before["used_memory"],
        "used_memory_after": after["used_memory"],
        "bytes_per_prediction": used / count,
        "dataset_bytes_per_prediction": dataset / count,
        "fill_seconds": elapsed,
    }


# --- 3. HTTP -----------------------------------------------------------------------------------


def call(url: str, body: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body.encode() if body else None, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def finished_prediction(base: str) -> str:
    """The get URL of a prediction that has succeeded (time scale 0: at once)."""
    created = call(f"{base}/v1/models/{MODEL}/predictions", CREATE_BODY)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if call(created["urls"]["get"])["status"] == "succeeded":
            return str(created["urls"]["get"])
        time.sleep(0.05)
    raise SystemExit(f"prediction {created['id']} did not finish")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_http(
    redis_url: str, tmp: Path, opts: argparse.Namespace
) -> list[tuple[str, float, float]]:
    """One server at a time: started, measured, stopped."""
    py = sys.executable
    get_lua = lua_script(tmp, "GET", None)
    post_lua = lua_script(tmp, "POST", CREATE_BODY)
    mock = [py, "-m", "mock_server", "--time-scale", "0"]
    servers = [
        ("baseline", [py, "-m", "uvicorn", "bench.baseline_app:app", *UVICORN]),
        ("memory", mock),
        ("redis", [*mock, "--store", redis_url]),
    ]
    rows: list[tuple[str, float, float]] = []
    for label, args in servers:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([*args, "--port", str(port)], port)
        try:
            if label == "baseline":
                cases = [
                    ("baseline GET", f"{base}/json", None),
                    ("baseline POST", f"{base}/echo", post_lua),
                ]
            else:
                cases = [
                    (f"{label} GET prediction", finished_prediction(base), get_lua),
                    (f"{label} POST create", f"{base}/v1/models/{MODEL}/predictions", post_lua),
                ]
            for name, url, lua in cases:
                rows.append((name, *wrk(url, opts.seconds, opts.connections, lua)))
        finally:
            stop(proc)
    return rows


# --- report ------------------------------------------------------------------------------------


def report(
    opts: argparse.Namespace,
    memory: dict[str, Any],
    redis: dict[str, Any],
    rows: list[tuple[str, float, float]],
) -> dict[str, Any]:
    by = {name: (rps, p99) for name, rps, p99 in rows}
    ratios = {
        "create redis/memory": by["redis POST create"][0] / by["memory POST create"][0],
        "get redis/memory": by["redis GET prediction"][0] / by["memory GET prediction"][0],
        "memory create/baseline POST": by["memory POST create"][0] / by["baseline POST"][0],
        "redis create/baseline POST": by["redis POST create"][0] / by["baseline POST"][0],
        "memory get/baseline GET": by["memory GET prediction"][0] / by["baseline GET"][0],
        "redis get/baseline GET": by["redis GET prediction"][0] / by["baseline GET"][0],
    }
    print(f"\nMemory per stored prediction ({opts.count} finished flux-schnell predictions)")
    print(f"{'store':<10}{'bytes/prediction':>18}{'fill s':>10}  measured as")
    print(
        f"{'memory':<10}{memory['bytes_per_prediction']:>18.0f}{memory['fill_seconds']:>10.1f}"
        "  VmRSS delta, fresh child process"
    )
    print(
        f"{'redis':<10}{redis['bytes_per_prediction']:>18.0f}{redis['fill_seconds']:>10.1f}"
        f"  used_memory delta (dataset only: {redis['dataset_bytes_per_prediction']:.0f}),"
        f" redis {redis['redis_version']}"
    )
    print(f"\nHTTP, wrk -t2 -c{opts.connections} -d{opts.seconds}s")
    print(f"{'case':<26}{'req/s':>10}{'p99 ms':>10}")
    for name, rps, p99 in rows:
        print(f"{name:<26}{rps:>10.0f}{p99:>10.2f}")
    print("\nRatios (req/s)")
    for name, value in ratios.items():
        print(f"{name:<30}{value:>6.2f}")
    return {
        "settings": {"seconds": opts.seconds, "connections": opts.connections, "count": opts.count},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "memory_store": memory,
        "redis_store": redis,
        "http": [{"case": name, "rps": rps, "p99_ms": p99} for name, rps, p99 in rows],
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.memory_child:
        print(json.dumps(asyncio.run(memory_child(opts.count))))
        return 0
    missing = [tool for tool in ("wrk", REDIS_SERVER) if shutil.which(tool) is None]
    if missing:
        print(f"needed: {', '.join(missing)} (apt-get install wrk redis-server)")
        return 2
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        print("memory store: filling a fresh child process...", flush=True)
        memory = measure_memory_store(opts.count)
        redis_port = free_port()
        redis_proc = start_redis(redis_port, tmp)
        try:
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            print("redis store: filling redis-server...", flush=True)
            redis = asyncio.run(measure_redis_store(redis_url, opts.count))
            print("http: wrk against baseline, memory and redis emulators...", flush=True)
            rows = measure_http(redis_url, Path(tmp), opts)
        finally:
            stop(redis_proc)
    result = report(opts, memory, redis, rows)
    result["total_seconds"] = time.monotonic() - began
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ntotal {result['total_seconds']:.0f} s; written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
