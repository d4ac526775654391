"""pytest plugin (entry point `pytest11`): a live server per session, reset before each test,
in-process app fixtures, and the `mock_server` marker (clock mode, seed, time scale, scenarios).

With no marker the server runs on the real clock at 1/100 of the models' timings, and the
official Python clients' environment points at it, so `replicate.run(...)` just finishes:

    def test_it(mock_server): replicate.run("black-forest-labs/flux-schnell", input={...})

    @pytest.mark.mock_server(clock="manual", seed=5, scenarios=[{"name": ..., ...}])
    def test_steps(mock_server): ...; mock_server.advance(5); ...
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import uvicorn
from starlette.applications import Starlette

from mock_server import tls
from mock_server.app import create_app
from mock_server.clock import ManualClock
from mock_server.config import OUTPUT_URLS, Settings
from mock_server.context import AppContext
from mock_server.scenarios import parse
from mock_server.timeline import ClockMode

if TYPE_CHECKING:
    from starlette.testclient import TestClient

T = TypeVar("T")
TOKEN = "r8_mock_server_pytest"
MARKER = "mock_server"
START_TIMEOUT = 10.0
POLL_INTERVAL = 0.05  # seconds between the official clients' polls, in tests
# The plugin's server: the real clock at 1/100 of the models' timings (flux-2-flex's 23.6 s take
# 0.24 s), and on the opt-in manual clock a client left waiting is told so after 5 s.
DEFAULT_SETTINGS = Settings(port=0, time_scale=0.01, clock_stall_timeout=5.0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(clock=None, seed=None, time_scale=None, scenarios=(), output_urls=None): "
        "configure the mock server for this test (clock: time|polls|manual; scenarios: dicts as "
        "POST /__admin/scenarios takes; output_urls: http|data, data for FileOutput objects).",
    )


@dataclass(frozen=True)
class Options:
    """The marker's arguments, with the settings' values where a test gives none."""

    clock: str
    seed: int
    time_scale: float
    scenarios: Sequence[Mapping[str, Any]] = ()
    output_urls: str = "http"  # "data": outputs inline, so the clients return FileOutput

    @classmethod
    def of(cls, request: pytest.FixtureRequest, settings: Settings) -> Options:
        marker = request.node.get_closest_marker(MARKER)
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
        unknown = sorted(set(kwargs) - set(MARKER_OPTIONS))
        if marker and (marker.args or unknown):
            raise TypeError(
                f"@pytest.mark.{MARKER} takes only keyword arguments clock, seed, time_scale, "
                f"scenarios and output_urls (got {list(marker.args) + unknown})"
            )
        pick = {k: v for k, v in kwargs.items() if v is not None}
        if pick.get("clock", settings.clock) not in [m.value for m in ClockMode]:
            raise ValueError(f"clock must be time, polls or manual, not {pick['clock']!r}")
        clock = pick.get("clock", settings.clock)
        # The settings' scale is for their clock kind: the plugin's 0.01 speeds up the real
        # clock, while on a manual or polls clock a test moves through the models' real timings.
        real = ClockMode.TIME.value
        same_kind = (clock == real) == (settings.clock == real)
        return cls(
            clock=clock,
            seed=pick.get("seed", settings.seed),
            time_scale=float(pick.get("time_scale", settings.time_scale if same_kind else 1.0)),
            scenarios=tuple(pick.get("scenarios", ())),
            output_urls=_output_urls(pick.get("output_urls", settings.output_urls)),
        )

    def apply(self, settings: Settings) -> Settings:
        return replace(settings, **self.changes())

    def changes(self) -> dict[str, Any]:
        """The settings a test's reset sets (the rest stay as the server started)."""
        return {
            "clock": self.clock,
            "seed": self.seed,
            "time_scale": self.time_scale,
            "output_urls": self.output_urls,
        }

    def add_scenarios(self, ctx: AppContext) -> None:
        for data in self.scenarios:
            ctx.scenarios.add(parse(dict(data), ctx.scenarios.schema))


MARKER_OPTIONS = ("clock", "seed", "time_scale", "scenarios", "output_urls")


def _output_urls(value: Any) -> str:
    if value not in OUTPUT_URLS:
        raise ValueError(f"output_urls must be http or data, not {value!r}")
    return str(value)


def token_for(settings: Settings) -> str:
    """The token the helpers send: the first `--api-token` if the server insists on some."""
    return settings.api_tokens[0] if settings.api_tokens else TOKEN


def python_client_base(url: str) -> str:
    """The base URL the installed official Python client takes: 1.x appends `/v1` itself, the
    Stainless-generated 2.x (`replicate-stainless`, or `replicate` 2.x) does not."""
    try:
        importlib.metadata.version("replicate-stainless")
        return url + "/replicate/v1"
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        major = importlib.metadata.version("replicate").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        major = "1"
    return url + ("/replicate" if major in ("0", "1") else "/replicate/v1")


def point_python_clients(monkeypatch: pytest.MonkeyPatch, server: MockServer) -> None:
    """Point the official Python clients' module-level default client (`replicate.run(...)`)
    at `server` for one test: the variables they read, and a rebuild of a connection already made
    (closed now and again after the test, so none outlives the server it talks to)."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", server.token)
    monkeypatch.setenv("REPLICATE_BASE_URL", python_client_base(server.url))
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", str(POLL_INTERVAL))
    if server.ca_file is not None:  # httpx reads it whenever a client is built
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    default = getattr(sys.modules.get("replicate"), "default_client", None)
    if default is not None:  # 1.x: built at import, reads the variables when it first connects
        monkeypatch.setattr(default, "poll_interval", POLL_INTERVAL)
    drop_python_clients()


def drop_python_clients() -> None:
    """Close the connections of the official Python clients' default client, if any."""
    module = sys.modules.get("replicate")
    default = getattr(module, "default_client", None)  # 1.x
    for name in ("_Client__client", "_Client__async_client"):
        connection = getattr(default, name, None) if default is not None else None
        if connection is not None:
            if name == "_Client__client":
                connection.close()
            setattr(default, name, None)
    client = getattr(module, "_client", None)  # 2.x (Stainless): built on first use
    if client is not None and hasattr(module, "_reset_client"):
        client.close()
        module._reset_client()  # type: ignore[union-attr]


@dataclass
class LiveServer:
    """uvicorn serving `app` in a daemon thread on 127.0.0.1:`port` (HTTPS with `tls=True`)."""

    url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    ca_file: Path | None = None  # the CA its generated certificate is signed by (tls=True)
    workdir: Path | None = None  # the server's key and the CA; removed at stop

    @classmethod
    def start(cls, settings: Settings) -> LiveServer:
        app = create_app(settings)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only then (else each reply waits ~40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # A folder of its own for the key and the CA: each server (each xdist worker) has its
        # own CA, so none overwrites another's.
        workdir = Path(tempfile.mkdtemp(prefix="mock-server-tls-")) if settings.https else None
        certs = None
        if workdir is not None:
            certs = tls.certificates(settings, workdir, settings.tls_ca_file or workdir / "ca.pem")
        config = uvicorn.Config(
            app,
            log_level="warning",
            loop="asyncio",
            access_log=settings.access_log,
            ssl_certfile=certs.certfile if certs else None,
            ssl_keyfile=certs.keyfile if certs else None,
            # At the session's end, a connection a test left open (a client never closed, over
            # TLS waiting for its close_notify) holds the stop for 1 s, not until the join gives up.
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="mock-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                sock.close()
                if workdir is not None:
                    shutil.rmtree(workdir, ignore_errors=True)
                raise RuntimeError(f"mock server did not start within {START_TIMEOUT} s")
            time.sleep(0.01)  # noqa: TID251 - a real thread starting, not the mock's clock
        loop = server.servers[0].get_loop()
        url = f"{'https' if certs else 'http'}://127.0.0.1:{port}"
        return cls(url, app, server, thread, loop, certs.ca_file if certs else None, workdir)

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the server's event loop. The app's state belongs to that thread, and a
        request's journal entry is written just after its response went out: queued behind
        it, a test's reset or journal read sees every request it got an answer to."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=START_TIMEOUT)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class MockServer:
    """What a test gets from the `mock_server` fixture: URLs, the token, and control of the
    server's clock, predictions, scenarios and journal (direct calls into its context)."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.url = live.url
        self.replicate_base_url = self.url + "/replicate"  # replicate (Python) 1.x
        self.cometapi_url = self.url + "/replicate/v1"  # replicate (npm), replicate (Python) 2.x
        self.v1_url = self.url + "/v1"
        self.python_client_url = python_client_base(self.url)  # for the installed Python client
        self.token = token_for(self.ctx.settings)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        # With `tls=True`: the CA to trust (the fixture sets SSL_CERT_FILE to it for the test).
        self.ca_file = live.ca_file

    @property
    def app(self) -> Starlette:
        return self.live.app

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.live.app.state.ctx
        return ctx

    def reset(self, **changes: object) -> None:
        """Empty predictions, journal and added scenarios; `changes`: seed, clock, time_scale,
        output_urls."""
        self.live.call(lambda: self.ctx.reset(**changes))

    def _manual_clock(self) -> ManualClock:
        clock = self.ctx.clock
        if not isinstance(clock, ManualClock):
            raise RuntimeError(
                f"the mock server's clock is {self.ctx.settings.clock!r}, not 'manual': use "
                '@pytest.mark.mock_server(clock="manual") to move it'
            )
        return clock

    def advance(self, seconds: float) -> datetime:
        """Move the manual clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("cannot advance the clock by a negative number of seconds")
        return self._manual_clock().advance(seconds)

    def set_time(self, when: datetime) -> datetime:
        """Set the manual clock (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("set_time needs an aware datetime (e.g. tzinfo=UTC)")
        return self._manual_clock().set(when)

    def now(self) -> datetime:
        return self.ctx.clock.now()

    def finish(
        self, prediction_id: str, outcome: str = "succeed", error: str | None = None
    ) -> dict[str, Any]:
        """End a running prediction now: `succeed`, `fail` (with `error`) or `cancel`; returns
        the prediction as the admin API shows it."""
        if outcome not in ("succeed", "fail", "cancel"):
            raise ValueError(f"outcome must be succeed, fail or cancel, not {outcome!r}")
        body = {"error": error} if error is not None and outcome == "fail" else None
        data = self._admin("POST", f"/__admin/predictions/{prediction_id}/{outcome}", body)
        prediction: dict[str, Any] = data["prediction"]
        return prediction

    def add_scenario(self, **fields: Any) -> None:
        """Add a scenario for this test (fields as POST /__admin/scenarios takes)."""
        scenario = parse(fields, self.ctx.scenarios.schema)
        self.live.call(lambda: self.ctx.scenarios.add(scenario))

    def remove_scenario(self, name: str) -> None:
        if not self.live.call(lambda: self.ctx.scenarios.remove(name)):
            raise KeyError(f"no scenario named {name!r}")

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Journal entries, newest first; filters: method, path (prefix), model, status, limit."""
        return self.live.call(lambda: [e.to_json() for e in self.ctx.journal.find(**filters)])

    def predictions(self) -> list[dict[str, Any]]:
        """Every token's predictions, newest first, as the API shows them (with `owner`)."""
        return list(self._admin("GET", "/__admin/predictions")["predictions"])

    def client(self, **kwargs: Any) -> Any:
        """The installed official Python client for this server: `replicate.Client` (1.x) or
        `replicate.Replicate` (the Stainless-generated 2.x); needs the `replicate` package."""
        import replicate  # optional: only this helper needs it

        kwargs.setdefault("base_url", self.python_client_url)
        if hasattr(replicate, "Replicate"):
            kwargs.setdefault("bearer_token", self.token)
            return replicate.Replicate(**kwargs)
        kwargs.setdefault("api_token", self.token)
        return replicate.client.Client(**kwargs)

    def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The admin API over HTTP: the views there need a request (URLs, owners)."""
        headers = {"Content-Type": "application/json"}
        admin = self.ctx.settings.admin_token
        if admin:
            headers["Authorization"] = f"Bearer {admin}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data, headers, method=method)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        with urllib.request.urlopen(req, timeout=30, context=context) as response:
            result: dict[str, Any] = json.load(response)
        return result


@pytest.fixture(scope="session")
def mock_server_settings() -> Settings:
    """Override in a conftest (any folder, any scope) to change the server (fixtures, tokens,
    timings): each test gets a live server started with the settings it sees."""
    return DEFAULT_SETTINGS


@pytest.fixture(scope="session")
def mock_server_pool() -> Iterator[dict[Settings, LiveServer]]:
    """The live servers of this session (of this xdist worker), one per distinct settings."""
    pool: dict[Settings, LiveServer] = {}
    yield pool
    for live in pool.values():
        live.stop()


@pytest.fixture
def mock_server_live(
    mock_server_pool: dict[Settings, LiveServer], mock_server_settings: Settings
) -> LiveServer:
    """The live server for this test's `mock_server_settings`, started on first use: a conftest
    further down that overrides the settings gets its own server, never another's."""
    live = mock_server_pool.get(mock_server_settings)
    if live is None:
        live = mock_server_pool[mock_server_settings] = LiveServer.start(mock_server_settings)
    return live


@pytest.fixture
def mock_server(
    request: pytest.FixtureRequest,
    mock_server_live: LiveServer,
    mock_server_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MockServer]:
    """The live server, reset for this test and set up as its `mock_server` marker says; the
    official Python clients' `REPLICATE_*` variables point at it for the test."""
    options = Options.of(request, mock_server_settings)
    server = MockServer(mock_server_live)
    server.reset(**options.changes())
    mock_server_live.call(lambda: options.add_scenarios(server.ctx))
    point_python_clients(monkeypatch, server)
    yield server
    drop_python_clients()


@pytest.fixture
def mock_app(request: pytest.FixtureRequest, mock_server_settings: Settings) -> Starlette:
    """A fresh in-process app, set up as the marker says (`clock="manual"` or `"polls"`: a
    ManualClock at 2024-01-01T00:00Z)."""
    options = Options.of(request, mock_server_settings)
    clock = ManualClock() if options.clock != "time" else None
    app = create_app(options.apply(mock_server_settings), clock=clock)
    options.add_scenarios(app.state.ctx)
    return app


@pytest.fixture
def mock_client(mock_app: Starlette, mock_server_settings: Settings) -> Iterator[TestClient]:
    """`starlette.testclient.TestClient(mock_app)` with the token set; needs httpx2
    (`pip install 'replicate-flux-emulator[pytest]'`)."""
    try:
        import httpx2  # noqa: F401  (Starlette's TestClient warns and fails without it)
    except ModuleNotFoundError:
        pytest.fail(
            "mock_client needs httpx2: pip install 'replicate-flux-emulator[pytest]'",
            pytrace=False,
        )
    from starlette.testclient import TestClient

    with TestClient(mock_app) as client:
        client.headers["Authorization"] = f"Bearer {token_for(mock_server_settings)}"
        yield client
