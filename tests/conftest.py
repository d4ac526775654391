"""Shared fixtures: settings, a manual clock, the in-process app and client, a live server in a
thread, and `spawned_server` (`python -m mock_server` in a child process)."""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.contract import httpx_hook

PROJECT = Path(__file__).resolve().parents[1]
TOKEN = "r8_test_token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = (
    "flux-schnell",
    "flux-dev",
    "flux-pro",
    "flux-1.1-pro",
    "flux-1.1-pro-ultra",
    "flux-kontext-pro",
    "flux-kontext-max",
    "flux-2-pro",
    "flux-2-max",
    "flux-2-dev",
    "flux-2-flex",
)
PREFIXES = ("/replicate/v1", "/v1")
# `event_hooks` for any httpx client (TestClient, replicate.Client): every response is checked
# against openapi.yaml, and an undocumented one fails the request with AssertionError.
CHECKED: dict[str, list[Callable[[Any], None]]] = {"response": [httpx_hook()]}


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Starlette:
    return create_app(settings, clock=clock)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    """Every response it receives is checked against openapi.yaml (tests/contract.py)."""
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(AUTH)
        c.event_hooks = CHECKED
        yield c


@dataclass
class LiveServer:
    url: str
    app: Starlette
    server: uvicorn.Server


def start_live_server(
    settings: Settings, loop: str = "asyncio"
) -> tuple[LiveServer, threading.Thread]:
    """uvicorn in a thread on a free 127.0.0.1 port (real HTTP, as users run it); `loop="uvloop"`
    runs the event loop the CLI runs."""
    app = create_app(settings)
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only then (else each reply waits ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", http="httptools", loop=loop)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", app, server), thread


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """A session-wide server with timings scaled to 2% (flux-2-flex finishes in about 0.5 s)."""
    live, thread = start_live_server(Settings(port=0, time_scale=0.02))
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


def http_scope(
    method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    """An ASGI HTTP scope for a request to testserver with the path exactly as given (for a
    test that drives the app directly: HTTP clients normalise paths and bodies)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }


def child_environ() -> dict[str, str]:
    """os.environ without MOCK_SERVER_* variables: a developer's settings must not reach a test
    server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCK_SERVER_")}


URL_WAIT_S = 10


@contextmanager
def spawned_server(
    *args: str,
    log: Path,
    command: Sequence[str] = (sys.executable, "-m", "mock_server", "--port", "0"),
    cwd: Path = PROJECT,
    env: Mapping[str, str] | None = None,
    scheme: str = "http",
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m mock_server --port 0 *args` (or `command *args`) in a child process, as users
    start it.

    Yields the URL it prints (within URL_WAIT_S; `scheme="https"` for a server started with
    --tls) and the process; its stderr (a 5xx's traceback) goes to `log`. On exit it is
    terminated, then killed if it does not stop within 10 s.
    """
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=dict(env) if env is not None else child_environ(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        stdout = proc.stdout
        assert stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # reads on, so a full pipe never blocks the server
            for text in stdout:
                lines.put(text)
            lines.put(None)  # end of output: the process exited

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            yield _printed_url(lines, proc, log, scheme), proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            reader.join(timeout=10)  # at EOF now; closing under a reading thread could raise
            stdout.close()


def _printed_url(
    lines: queue.Queue[str | None], proc: subprocess.Popen[str], log: Path, scheme: str = "http"
) -> str:
    deadline = time.monotonic() + URL_WAIT_S
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            pytest.fail(
                f"the server exited ({proc.wait()}) before printing its URL:\n"
                f"{log.read_text()[-2000:]}"
            )
        match = re.search(re.escape(scheme) + r"://127\.0\.0\.1:[1-9][0-9]*", line)
        if match:
            return match.group(0)
    pytest.fail(f"the server printed no URL within {URL_WAIT_S} s")


def create(
    client: TestClient,
    path: str = "/v1/models/black-forest-labs/flux-dev/predictions",
    prompt: str = "a fox",
    **headers: str,
) -> dict[str, Any]:
    """POST a create that must succeed (201) and return its prediction."""
    response = client.post(path, json={"input": {"prompt": prompt}}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


NGINX_START_S = 20.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        pytest.fail(
            "nginx is not installed: run `make test` (it installs it) or apt-get install nginx"
        )
    return found


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + NGINX_START_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"nothing listens on {port} after {NGINX_START_S} s:\n{log.read_text()}")
        try:
            code = proc.wait(timeout=0.05)  # the pause between tries; notices an exit
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"it exited ({code}):\n{log.read_text()}")


# Kept beside its fixture (at the end of the file) on purpose.
from tests.redis_server import RedisServer, RedisServerMissing  # noqa: E402


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test's own (free port, own folder, nothing persisted), stopped
    after it. Fails, never skips, when redis-server is not installed: `make test` installs it."""
    try:
        server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    except RedisServerMissing as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
