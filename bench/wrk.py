"""wrk runs: one request shape per run (method, headers, body: a Lua script), results read from a
JSON line the script's `done()` writes (exact percentiles, error counts), not from wrk's text."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import CPUS, pinned

MARK = "WRK_JSON "
DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, e.connect, e.read, e.write,
    e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """How hard wrk drives a server: the same for every case of a run."""

    threads: int
    connections: int
    seconds: int
    timeout_s: int = 10


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers
    mb_per_s: float

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def script(
    directory: Path,
    name: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> Path:
    """A wrk Lua script sending one request shape (ASCII only) and reporting through `done`."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    for key, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}")
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + DONE)
    return path


def run(url: str, lua: Path, load: Load) -> Result:
    cmd = [
        *pinned([], CPUS[0] if CPUS else None),
        wrk_path() or "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        f"--timeout={load.timeout_s}s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=load.seconds + load.timeout_s + 30
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line[len(MARK) :])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        rps=raw["requests"] / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        requests=raw["requests"],
        errors=errors,
        mb_per_s=raw["bytes"] / seconds / 1e6,
    )
