"""`make bench`: the emulator beside a bare Starlette baseline, every figure of issue 10 in one run.

    python -m bench.run [--seconds 5] [--connections 64] [--threads 2] [--output PATH]
    python -m bench.run --smoke      # every part, very briefly (what tests/test_bench.py runs)

HTTP (wrk, the same threads, connections and duration for every case; loopback only). Servers
run one configuration at a time and are stopped before the next starts. With taskset and two or
more CPUs, wrk runs on all CPUs but the last and each single-process server (emulator or
baseline) on the last one, so that the load generator and the server measured do not take
turns on the same core; servers with two workers, and Redis, are not pinned:

- `uvicorn memory 1w`, `uvicorn redis 1w`, `uvicorn redis 2w`: `mock-server` (uvicorn,
  httptools, uvloop, no access log, default time scale 1) with the memory store, with Redis,
  and with `--workers 2` on Redis; beside bench/baseline_app.py served the same way (2 workers
  beside 2 workers). Cases, each beside its baseline route:
    create        POST /v1/models/black-forest-labs/flux-schnell/predictions {"input":{"prompt":
                  "a cat"}}                              vs POST /echo (a create-sized answer)
    get running   GET of a prediction in `processing` for the whole run (created with a
                  `bench-running` scenario: no set-up, 86,400 s of run time)
                                                         vs GET /json/running (its body)
    get finished  GET of a succeeded prediction         vs GET /json/finished (its body)
    list          GET /v1/predictions, a full page (a token of its own with 100 predictions)
                                                         vs GET /json/list (that page)
    image         GET of a cached output file (fetched once first)
                                                         vs GET /bytes (as many bytes)
  The baseline's bodies are the emulator's own answers, captured at the start of the run.
- `granian memory 1w`: `mock-server --server granian` beside the baseline under granian (if
  importable), create and get finished.
- store size: get of a stored prediction (the middle one) and create, with 1,000 and with
  1,000,000 finished predictions stored (bench/filled_server.py).

In-process figures, each in fresh child processes: first render per format at 1 and 4 MP
(bench/render_bench.py); RSS per stored finished prediction at 100,000 and 1,000,000 (memory
store) and Redis used_memory per prediction at 100,000 (bench/store_bench.py).

Prints tables (every target marked met / NOT MET) and writes bench/results/bench.json (smoke:
bench-smoke.json) with the machine, versions and load average. Every child process is stopped
at the end, on error or interrupt too; each step has a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import http_bench, render_bench, store_bench, wrk
from bench.procs import CPUS, ROOT, Proc, ProcError, free_port, pinned, start_redis

MODEL = "black-forest-labs/flux-schnell"
CREATE_PATH = f"/v1/models/{MODEL}/predictions"
CREATE_BODY = json.dumps({"input": {"prompt": "a cat"}})
TOKEN = http_bench.TOKEN  # the filled server's predictions belong to it
LIST_TOKEN = "bench-list-token"
RESULTS = ROOT / "bench" / "results"
RUNNING_SCENARIO = "bench-running"
SCENARIOS = f"""scenarios:
  - name: {RUNNING_SCENARIO}
    description: in processing for a day (the bench's running prediction)
    timing:
      setup: 0
      predict: 86400
"""
PACKAGES = (
    "replicate-flux-emulator",
    "uvicorn",
    "starlette",
    "httptools",
    "uvloop",
    "orjson",
    "pillow",
    "redis",
    "hiredis",
    "granian",
)
KIB = 1024


@dataclass(frozen=True)
class Plan:
    """What one run measures: `make bench` or the smoke run."""

    load: wrk.Load
    rss_counts: tuple[int, ...]
    redis_count: int
    store_sizes: tuple[int, int]
    render_trials: int
    list_size: int  # predictions the list token gets (the page holds at most 100)
    smoke: bool


FULL = Plan(
    load=wrk.Load(threads=2, connections=64, seconds=5),
    rss_counts=(100_000, 1_000_000),
    redis_count=100_000,
    store_sizes=(1_000, 1_000_000),
    render_trials=3,
    list_size=100,
    smoke=False,
)
SMOKE = Plan(
    load=wrk.Load(threads=2, connections=2, seconds=1),
    rss_counts=(1_000, 5_000),
    redis_count=1_000,
    store_sizes=(1_000, 5_000),
    render_trials=1,
    list_size=5,
    smoke=True,
)


# --- HTTP helpers (setup requests, not measured) ----------------------------------------------


def request(
    url: str,
    *,
    body: str | None = None,
    token: str = TOKEN,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body.encode() if body else None, headers=all_headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def get_json(url: str, token: str = TOKEN) -> Any:
    return json.loads(request(url, token=token)[1])


def create(base: str, prompt: str, scenario: str | None, token: str = TOKEN) -> Any:
    headers = {"X-Mock-Scenario": scenario} if scenario else {}
    body = json.dumps({"input": {"prompt": prompt}})
    status, data = request(base + CREATE_PATH, body=body, token=token, headers=headers)
    assert status == 201, (status, data)
    return json.loads(data)


def wait_status(url: str, wanted: set[str], token: str = TOKEN, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = get_json(url, token)
        if body["status"] in wanted:
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: still {body['status']}, wanted {sorted(wanted)}")
        time.sleep(0.05)


# --- cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    path: str
    method: str = "GET"
    body: str | None = None
    token: str | None = TOKEN


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    emulator: Req
    baseline: Req
    body_bytes: int


CASE_ORDER = ("create", "get_running", "get_finished", "list", "image")
LABELS = {
    "create": "create / echo",
    "get_running": "get running / JSON",
    "get_finished": "get finished / JSON",
    "list": "list / JSON",
    "image": "cached image / bytes",
}


@dataclass
class Captured:
    """The emulator's answers, which the baseline then serves (and the cases' paths)."""

    cases: dict[str, Case]
    bodies: dict[str, Any]


def prepare(base: str, list_size: int) -> Captured:
    """Make what the cases read on a fresh emulator at `base`: a running and a finished
    prediction, a token with a page of predictions, a rendered output; capture the answers."""
    running = create(base, "a cat, running", RUNNING_SCENARIO)
    running_body = wait_status(running["urls"]["get"], {"processing"})
    finished = create(base, "a cat, finished", "instant")
    finished_body = wait_status(finished["urls"]["get"], {"succeeded"})
    for i in range(list_size):
        create(base, f"a cat, listed {i}", "instant", token=LIST_TOKEN)
    list_url = f"{base}/v1/predictions"
    for item in get_json(list_url, LIST_TOKEN)["results"]:
        wait_status(item["urls"]["get"], {"succeeded"}, LIST_TOKEN)
    list_body = get_json(list_url, LIST_TOKEN)
    assert len(list_body["results"]) == min(list_size, 100), len(list_body["results"])
    image_url = finished_body["output"][0]
    for _ in range(8):  # rendered once; with several workers, more than one may render it
        image = urllib.request.urlopen(image_url, timeout=60).read()
    created = create(base, "a cat", None)  # the create case's answer (its input is echoed)
    path = image_url.removeprefix(base)

    def size(doc: Any) -> int:
        return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())

    cases = {
        "create": Case(
            "create",
            LABELS["create"],
            Req(CREATE_PATH, "POST", CREATE_BODY),
            Req("/echo", "POST", CREATE_BODY),
            size(created),
        ),
        "get_running": Case(
            "get_running",
            LABELS["get_running"],
            Req(running["urls"]["get"].removeprefix(base)),
            Req("/json/running"),
            size(running_body),
        ),
        "get_finished": Case(
            "get_finished",
            LABELS["get_finished"],
            Req(finished["urls"]["get"].removeprefix(base)),
            Req("/json/finished"),
            size(finished_body),
        ),
        "list": Case(
            "list",
            LABELS["list"],
            Req("/v1/predictions", token=LIST_TOKEN),
            Req("/json/list"),
            size(list_body),
        ),
        "image": Case("image", LABELS["image"], Req(path, token=None), Req("/bytes"), len(image)),
    }
    bodies = {
        "json": {"running": running_body, "finished": finished_body, "list": list_body},
        "create": created,
        "bytes": len(image),
    }
    return Captured(cases, bodies)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """A server to start: ready at its `listening on` line, or (url) when `probe` answers 2xx."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    probe: str = ""
    timeout: float = 90.0
    single: bool = True  # one server process: runs on its own CPU, away from wrk (procs.CPUS)


@dataclass
class Runner:
    plan: Plan
    tmp: Path
    progress: Callable[[str], None]
    procs: list[Proc] = field(default_factory=list)
    scripts: dict[tuple[str, str | None, str | None], Path] = field(default_factory=dict)

    # processes

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        while self.procs:
            self.stop(self.procs[-1])

    @contextlib.contextmanager
    def running(self, *launches: Launch) -> Iterator[list[Proc]]:
        """Start every server at once, wait until each is ready, stop them all at the end."""
        started: list[Proc] = []
        try:
            for launch in launches:
                cpu = CPUS[1] if CPUS and launch.single else None
                proc = Proc.spawn(launch.name, pinned(launch.args, cpu), self.tmp, env=launch.env)
                started.append(proc)
                self.procs.append(proc)
            for proc, launch in zip(started, launches, strict=True):
                probe = launch.url + launch.probe if launch.url else None
                proc.wait_ready(probe, timeout=launch.timeout)
                proc.url = launch.url or proc.url
            yield started
        finally:
            for proc in reversed(started):
                self.stop(proc)

    def emulator_launch(self, name: str, *flags: str) -> Launch:
        args = [sys.executable, "-m", "mock_server", "--port", "0", "--scenarios"]
        single = "--workers" not in flags
        return Launch(name, [*args, str(self.scenarios()), *flags], single=single)

    def uvicorn_baseline(self, name: str, bodies: Path, workers: int) -> Launch:
        args = [sys.executable, "-m", "bench.baseline_app", "--workers", str(workers)]
        return Launch(name, args, {"BENCH_BASELINE_BODIES": str(bodies)}, single=workers == 1)

    def granian(self, name: str, target: list[str], env: dict[str, str], probe: str) -> Launch:
        port = free_port()
        args = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
        args += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "1"]
        args += ["--no-access-log", "--log-level", "warning", *target]
        return Launch(name, args, env, url=f"http://127.0.0.1:{port}", probe=probe)

    def scenarios(self) -> Path:
        path = self.tmp / "scenarios.yaml"
        path.write_text(SCENARIOS)
        return path

    # wrk

    def script(self, req: Req) -> Path:
        key = (req.method, req.body, req.token)
        if key not in self.scripts:
            headers = {"Authorization": f"Bearer {req.token}"} if req.token else {}
            if req.body is not None:
                headers["Content-Type"] = "application/json"
            name = f"req{len(self.scripts)}"
            self.scripts[key] = wrk.script(self.tmp, name, req.method, headers, req.body)
        return self.scripts[key]

    def measure(self, base: str, req: Req, what: str) -> wrk.Result:
        status, _ = request(base + req.path, body=req.body, token=req.token or TOKEN)
        assert 200 <= status < 300, (what, status)
        result = wrk.run(base + req.path, self.script(req), self.plan.load)
        note = f", {result.errors} ERRORS" if result.errors else ""
        self.progress(
            f"    {what:<44}{result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f}  "
            f"p99 {result.p99_ms:7.2f} ms{note}"
        )
        if result.requests == 0:
            raise RuntimeError(f"{what}: wrk made no request")
        return result

    def pairs(self, emulator: Proc, baseline: Proc, cases: list[Case]) -> dict[str, Any]:
        """Each case on the emulator, then on the baseline (smoke: both at once)."""
        out: dict[str, Any] = {}
        for case in cases:
            runs = [
                (emulator.url, case.emulator, f"emulator {case.key}"),
                (baseline.url, case.baseline, f"baseline {case.baseline.path}"),
            ]
            emu, base = self.each(lambda run: self.measure(*run), runs)
            out[case.key] = pair(case, emu, base)
        return out

    def each(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """fn over items: one after the other, or all at once in a smoke run (nothing timed)."""
        if not self.plan.smoke:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(len(items)) as pool:
            return list(pool.map(fn, items))


def pair(case: Case, emu: wrk.Result, base: wrk.Result) -> dict[str, Any]:
    return {
        "label": case.label,
        "emulator_path": case.emulator.path,
        "baseline_path": case.baseline.path,
        "body_bytes": case.body_bytes,
        "emulator": emu.to_json(),
        "baseline": base.to_json(),
        "ratio_rps": emu.rps / base.rps,
        "ratio_p99": emu.p99_ms / base.p99_ms if base.p99_ms else None,
        "load_average_1m": os.getloadavg()[0],  # after both runs
    }


def flush_redis(url: str) -> None:
    import redis

    with redis.Redis.from_url(url, socket_timeout=10) as client:
        client.flushall()


def http_sections(r: Runner, redis_url: str) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    bodies = r.tmp / "baseline-bodies.json"
    configs = [
        ("uvicorn memory 1w", [], 1),
        ("uvicorn redis 1w", ["--store", redis_url], 1),
        ("uvicorn redis 2w", ["--store", redis_url, "--workers", "2"], 2),
    ]
    for name, flags, workers in configs:
        r.progress(f"  {name}")
        if "--store" in flags:
            flush_redis(redis_url)
        slug = name.replace(" ", "-")
        launches = [r.emulator_launch(slug, *flags)]
        # The baseline serves the first emulator's answers: it starts once they are captured.
        baseline = r.uvicorn_baseline(f"{slug}-baseline", bodies, workers)
        with contextlib.ExitStack() as stack:
            if bodies.exists():
                emulator, base = stack.enter_context(r.running(*launches, baseline))
                captured = prepare(emulator.url, r.plan.list_size)
            else:
                (emulator,) = stack.enter_context(r.running(*launches))
                captured = prepare(emulator.url, r.plan.list_size)
                bodies.write_text(json.dumps(captured.bodies))
                (base,) = stack.enter_context(r.running(baseline))
            sections[name] = {
                "server": "uvicorn",
                "store": "redis" if "--store" in flags else "memory",
                "workers": workers,
                "cases": r.pairs(emulator, base, [captured.cases[k] for k in CASE_ORDER]),
            }
    sections["granian memory 1w"] = granian_section(r, bodies)
    return sections


def granian_section(r: Runner, bodies: Path) -> dict[str, Any]:
    if importlib.util.find_spec("granian") is None:
        reason = "granian is not importable (pip install 'replicate-flux-emulator[granian]')"
        r.progress(f"  granian: skipped, {reason}")
        return {"skipped": reason}
    r.progress("  granian memory 1w")
    emulator = r.emulator_launch("granian-emulator", "--server", "granian")  # as users run it
    baseline = r.granian(
        "granian-baseline",
        ["bench.baseline_app:app"],
        {"BENCH_BASELINE_BODIES": str(bodies)},
        "/json",
    )
    try:
        with r.running(emulator, baseline) as (emu, base):
            captured = prepare(emu.url, 1)
            cases = [captured.cases["create"], captured.cases["get_finished"]]
            return {
                "server": "granian",
                "version": version("granian"),
                "store": "memory",
                "workers": 1,
                "cases": r.pairs(emu, base, cases),
            }
    except ProcError as exc:
        reason = f"granian did not serve: {str(exc).splitlines()[0]}"
        r.progress(f"  granian: skipped, {reason}")
        return {"skipped": reason, "log": str(exc)[-2000:]}


def store_size_section(r: Runner) -> dict[str, Any]:
    """The same server filled with few and with many predictions (smoke: both at once)."""
    small, big = r.plan.store_sizes
    out: dict[str, Any] = {"sizes": [small, big]}

    def launch(count: int) -> Launch:
        args = [sys.executable, "-m", "bench.filled_server", "--count", str(count)]
        args += ["--max-predictions", str(big + 1_000_000)]
        return Launch(f"filled-{count}", args, timeout=900)

    def measure(server: Proc, count: int) -> dict[str, Any]:
        filled = json.loads(server.tail(100_000).split("filled ", 1)[1].splitlines()[0])
        r.progress(
            f"    {count:,} filled in {filled['fill_seconds']:.1f} s, "
            f"{filled['bytes_per_prediction']:.0f} B RSS per prediction"
        )
        get = Req(f"/v1/predictions/{filled['middle_id']}")
        assert get_json(server.url + get.path)["status"] == "succeeded"
        create = Req(CREATE_PATH, "POST", CREATE_BODY)
        return {
            "fill": filled,
            "get": r.measure(server.url, get, f"get ({count:,} stored)").to_json(),
            "create": r.measure(server.url, create, f"create ({count:,} stored)").to_json(),
        }

    groups = [[small, big]] if r.plan.smoke else [[small], [big]]
    for counts in groups:
        r.progress(f"  {' and '.join(f'{c:,}' for c in counts)} stored predictions (filling...)")
        with r.running(*(launch(c) for c in counts)) as servers:
            rows = r.each(lambda sc: measure(*sc), list(zip(servers, counts, strict=True)))
            out.update({str(c): row for c, row in zip(counts, rows, strict=True)})
    for key in ("get", "create"):
        out[f"{key}_rps_ratio"] = out[str(big)][key]["rps"] / out[str(small)][key]["rps"]
        out[f"{key}_p99_ratio"] = out[str(big)][key]["p99_ms"] / out[str(small)][key]["p99_ms"]
    return out


def memory_section(r: Runner, redis_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"memory_store": {}}
    for count in r.plan.rss_counts:
        r.progress(f"  memory store, {count:,} predictions (fresh child process)")
        row = store_bench.measure_memory_store(count)
        r.progress(f"    {row['bytes_per_prediction']:.0f} B RSS per prediction")
        out["memory_store"][str(count)] = row
    r.progress(f"  redis store, {r.plan.redis_count:,} predictions")
    flush_redis(redis_url)
    row = asyncio.run(store_bench.measure_redis_store(redis_url, r.plan.redis_count))
    r.progress(f"    {row['bytes_per_prediction']:.0f} B used_memory per prediction")
    out["redis_store"] = {str(r.plan.redis_count): row}
    return out


# --- machine, targets, report ------------------------------------------------------------------


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def command_line(args: list[str]) -> str | None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else None
    )


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * KIB
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {p: version(p) for p in PACKAGES}
    out["wrk"] = command_line([wrk.wrk_path() or "wrk", "-v"])
    out["redis-server"] = command_line([store_bench.REDIS_SERVER, "--version"])
    out["git_commit"] = command_line(["git", "rev-parse", "HEAD"])
    dirty = command_line(["git", "status", "--porcelain", "mock_server"])
    out["mock_server_uncommitted_changes"] = dirty is not None
    return out


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    goal: str
    met: bool
    unit: str = ""


def targets(result: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    mem = result["http"]["uvicorn memory 1w"]["cases"]
    redis = result["http"]["uvicorn redis 1w"]["cases"]

    def at_least(name: str, value: float, goal: float, unit: str = "") -> None:
        out.append(Target(name, value, f">= {goal:g}{unit}", value >= goal, unit))

    def at_most(name: str, value: float, goal: float, unit: str = "", strict: bool = False) -> None:
        met = value < goal if strict else value <= goal
        out.append(Target(name, value, f"{'<' if strict else '<='} {goal:g}{unit}", met, unit))

    at_least("get running / baseline JSON (req/s)", mem["get_running"]["ratio_rps"], 0.6)
    at_least("get finished / baseline JSON (req/s)", mem["get_finished"]["ratio_rps"], 0.6)
    at_least("create / baseline echo (req/s)", mem["create"]["ratio_rps"], 0.5)
    at_least("cached image / baseline bytes (req/s)", mem["image"]["ratio_rps"], 0.7)
    conns = result["settings"]["connections"]
    for key in ("get_running", "get_finished", "create"):
        ratio = mem[key]["ratio_p99"] or 0.0
        at_most(f"p99 {key.replace('_', ' ')} / baseline p99 ({conns} conns)", ratio, 2.0, "x")
    sizes = result["store_size"]
    small, big = sizes["sizes"]
    for key in ("get", "create"):
        at_least(
            f"{key} with {big:,} stored / {small:,} stored (req/s)", sizes[f"{key}_rps_ratio"], 0.9
        )
    for count, row in result["memory"]["memory_store"].items():
        at_most(
            f"RSS per stored prediction, {int(count):,} (memory store)",
            row["bytes_per_prediction"],
            1.5 * KIB,
            " B",
        )
    for key in ("get_running", "get_finished", "create"):
        ratio = redis[key]["emulator"]["rps"] / mem[key]["emulator"]["rps"]
        at_least(f"redis / memory store {key.replace('_', ' ')} (req/s)", ratio, 0.5)
    render = result["render"]
    # What a client waits for: a new image's first GET from a running server (see render_bench).
    at_most(
        "first render 1 MP WebP, served", render["webp_1MP"]["served_ms"], 60, " ms", strict=True
    )
    at_most(
        "first render 4 MP PNG, served", render["png_4MP"]["served_ms"], 400, " ms", strict=True
    )
    return out


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def report(result: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m, s = result["machine"], result["settings"]
    load = result["load_average"]
    add("")
    add(
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"load average {' '.join(f'{x:.2f}' for x in load['start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in load['end'])} at end"
    )
    v = result["versions"]
    add(
        f"uvicorn {v['uvicorn']}, starlette {v['starlette']}, httptools {v['httptools']}, "
        f"uvloop {v['uvloop']}, granian {v['granian']}, {v['redis-server']}, {v['wrk']}"
    )
    busiest = max(load["start"][0], load["end"][0])
    if m["cpus"] and busiest > m["cpus"]:
        add(
            f"WARNING: a load average of {busiest:.1f} on {m['cpus']} CPUs: other work competed "
            "with the servers and wrk, so these figures (ratios too) are noisy"
        )
    add(
        f"wrk -t{s['threads']} -c{s['connections']} -d{s['seconds']}s per case"
        f"{' (SMOKE: not a measurement)' if s['smoke'] else ''}; ratios are emulator / baseline"
    )
    add("")
    head = (
        f"{'server':<18}{'case':<22}{'emulator req/s':>15}{'p50':>7}{'p99 ms':>8}"
        f"{'baseline req/s':>16}{'p50':>7}{'p99 ms':>8}{'req/s x':>9}{'p99 x':>7}{'bytes':>8}"
    )
    add(head)
    add("-" * len(head))
    for name, section in result["http"].items():
        if "skipped" in section:
            add(f"{name:<18}skipped: {section['skipped']}")
            continue
        for case in section["cases"].values():
            e, b = case["emulator"], case["baseline"]
            errors = " ERR" if e["errors"] or b["errors"] else ""
            add(
                f"{name:<18}{case['label']:<22}{fmt_rps(e['rps']):>15}{e['p50_ms']:>7.2f}"
                f"{e['p99_ms']:>8.2f}{fmt_rps(b['rps']):>16}{b['p50_ms']:>7.2f}{b['p99_ms']:>8.2f}"
                f"{case['ratio_rps']:>9.2f}{case['ratio_p99'] or 0:>7.2f}{case['body_bytes']:>8}"
                f"{errors}"
            )
    gran = result["http"].get("granian memory 1w", {})
    uv = result["http"]["uvicorn memory 1w"]["cases"]
    if "cases" in gran:
        for key, case in gran["cases"].items():
            ratio = case["emulator"]["rps"] / uv[key]["emulator"]["rps"]
            add(f"{'':<18}emulator {key}: granian / uvicorn req/s {ratio:.2f}")
    add("")
    sizes = result["store_size"]
    small, big = sizes["sizes"]
    add(f"Stored predictions (memory store, uvicorn 1w)   {'req/s':>10}{'p50':>8}{'p99 ms':>8}")
    for count in (small, big):
        for key in ("get", "create"):
            row = sizes[str(count)][key]
            add(
                f"  {key:<7}with {count:>9,} stored{'':<15}{fmt_rps(row['rps']):>10}"
                f"{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}"
            )
    for key in ("get", "create"):
        add(
            f"  {key}: {big:,} / {small:,} req/s {sizes[f'{key}_rps_ratio']:.2f}, "
            f"p99 {sizes[f'{key}_p99_ratio']:.2f}"
        )
    add("")
    add("Memory per stored finished prediction")
    for count, row in result["memory"]["memory_store"].items():
        add(
            f"  memory store {int(count):>9,}: {row['bytes_per_prediction']:>7.0f} B RSS "
            f"(fill {row['fill_seconds']:.1f} s)"
        )
    for count, row in result["memory"]["redis_store"].items():
        add(
            f"  redis store  {int(count):>9,}: {row['bytes_per_prediction']:>7.0f} B used_memory "
            f"(dataset {row['dataset_bytes_per_prediction']:.0f} B, "
            f"fill {row['fill_seconds']:.1f} s)"
        )
    add("")
    trials = result["settings"]["render_trials"]
    add(
        f"First render (best of {trials}), ms: served by a fresh server / in a fresh process / warm"
    )
    for row in result["render"].values():
        size = f"{row['width']}x{row['height']}"
        add(
            f"  {row['format']:<5}{size:<27}{row['served_ms']:>8.1f}"
            f"{row['first_ms']:>9.1f}{row['warm_ms']:>8.1f}"
        )
    add("")
    add(f"{'target':<58}{'value':>10}  {'goal':<12}result")
    for t in result["targets"]:
        value = (
            f"{t['value']:.0f}{t['unit']}" if t["unit"] in (" B", " ms") else f"{t['value']:.2f}"
        )
        add(f"{t['name']:<58}{value:>10}  {t['goal']:<12}{'met' if t['met'] else 'NOT MET'}")
    met = sum(t["met"] for t in result["targets"])
    add(f"{met} of {len(result['targets'])} targets met; wall time {result['wall_seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every part, very briefly")
    parser.add_argument("--seconds", type=int, help="wrk duration per case (default 5)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, help="wrk threads (default 2)")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/bench.json)")
    opts = parser.parse_args(argv)
    plan = SMOKE if opts.smoke else FULL
    load = wrk.Load(
        threads=opts.threads or plan.load.threads,
        connections=opts.connections or plan.load.connections,
        seconds=opts.seconds or plan.load.seconds,
    )
    plan = Plan(**{**plan.__dict__, "load": load})
    output = opts.output or RESULTS / ("bench-smoke.json" if plan.smoke else "bench.json")
    began = time.monotonic()
    missing = [t for t in ("wrk", store_bench.REDIS_SERVER) if shutil.which(t) is None]
    if missing:
        print(f"bench: needed and missing: {', '.join(missing)} (apt-get install wrk redis-server)")
        return 2

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {text}", flush=True)

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    result: dict[str, Any] = {
        "settings": {
            "smoke": plan.smoke,
            "threads": load.threads,
            "connections": load.connections,
            "seconds": load.seconds,
            "rss_counts": list(plan.rss_counts),
            "redis_count": plan.redis_count,
            "store_sizes": list(plan.store_sizes),
            "render_trials": plan.render_trials,
            "list_page": min(plan.list_size, 100),
            "emulator": "mock-server --scenarios <bench-running> (time scale 1, no access log)",
            # wrk on the first CPUs, each single-process server (and its baseline) on the last
            "cpus": {"wrk": CPUS[0], "server": CPUS[1]} if CPUS else "not pinned",
        },
        "machine": machine(),
        "versions": versions(),
        "load_average": {"start": list(os.getloadavg())},
    }
    progress(f"bench: load average {os.getloadavg()[0]:.2f}; wrk {load}")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        runner = Runner(plan, Path(tmp), progress)
        try:
            redis_proc, redis_url = start_redis(Path(tmp))  # stopped by stop_all
            runner.procs.append(redis_proc)
            progress("HTTP (wrk)")
            result["http"] = http_sections(runner, redis_url)
            progress("Stored predictions")
            result["store_size"] = store_size_section(runner)
            progress("Memory per prediction")
            result["memory"] = memory_section(runner, redis_url)
            progress("First renders")
            result["render"] = render_bench.measure(plan.render_trials, one_process=plan.smoke)
        finally:
            runner.stop_all()
    result["load_average"]["end"] = list(os.getloadavg())
    result["wall_seconds"] = time.monotonic() - began
    result["targets"] = [t.__dict__ for t in targets(result)]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
