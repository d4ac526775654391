"""Throughput and p99 of the emulator beside a bare Starlette app, measured with wrk in one run.

    python bench/http_bench.py [--seconds 5] [--connections 32]

Both servers run as uvicorn (httptools + uvloop, one worker, access log off) in subprocesses on
127.0.0.1. Results are printed as a table and as ratios mock/baseline; absolute numbers depend on
the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
CREATE_BODY = json.dumps({"input": {"prompt": "a cat", "num_outputs": 1}})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start: {args}")


def wrk(url: str, seconds: int, connections: int, lua: str | None = None) -> tuple[float, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if lua:
        cmd += ["-s", lua]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rps, p99


def lua_script(directory: Path, method: str, body: str | None) -> str:
    path = directory / f"{method.lower()}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {TOKEN}"']
    if body is not None:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(body)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk")
        return 2
    py = sys.executable
    base_port, mock_port = free_port(), free_port()
    uv = ["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    baseline = start(
        [py, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(base_port), *uv], base_port
    )
    mock = start(
        [py, "-m", "mock_server", "--port", str(mock_port), "--time-scale", "0"], mock_port
    )
    try:
        mock_url = f"http://127.0.0.1:{mock_port}"
        req = urllib.request.Request(
            f"{mock_url}/v1/models/black-forest-labs/flux-schnell/predictions",
            data=CREATE_BODY.encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        created = json.load(urllib.request.urlopen(req))
        time.sleep(0.1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        get = urllib.request.Request(created["urls"]["get"], headers=auth)
        done = json.load(urllib.request.urlopen(get))
        image_url = done["output"][0]
        urllib.request.urlopen(image_url).read()  # render once: the benchmark reads the cache
        with tempfile.TemporaryDirectory() as tmp:
            get_lua = lua_script(Path(tmp), "GET", None)
            post_lua = lua_script(Path(tmp), "POST", CREATE_BODY)
            base = f"http://127.0.0.1:{base_port}"
            create_url = f"{mock_url}/v1/models/black-forest-labs/flux-schnell/predictions"
            cases = [
                ("baseline GET", f"{base}/json", None),
                ("mock GET prediction", created["urls"]["get"], get_lua),
                ("baseline POST", f"{base}/echo", post_lua),
                ("mock POST create", create_url, post_lua),
                ("mock GET image (cached)", image_url, None),
            ]
            rows = [
                (name, wrk(url, opts.seconds, opts.connections, lua)) for name, url, lua in cases
            ]
    finally:
        for proc in (baseline, mock):
            proc.terminate()
            proc.wait(timeout=10)
    print(f"{'case':<26}{'req/s':>10}{'p99 ms':>10}")
    for name, (rps, p99) in rows:
        print(f"{name:<26}{rps:>10.0f}{p99:>10.2f}")
    by = dict(rows)
    print(f"\nGET  ratio mock/baseline: {by['mock GET prediction'][0] / by['baseline GET'][0]:.2f}")
    print(f"POST ratio mock/baseline: {by['mock POST create'][0] / by['baseline POST'][0]:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
