"""pytest plugin (entry point `pytest11`): a live server per session, reset before each test,
in-process app fixtures, and the `mock_server` marker (clock mode, seed, time scale, scenarios).

With no marker the server runs on the real clock at 1/100 of the models' timings, and the
official Python clients' environment points at it, so `replicate.run(...)` just finishes:

    def test_it(mock_server): replicate.run("black-forest-labs/flux-schnell", input={...})

    @pytest.mark.mock_server(clock="manual", seed=5, scenarios=[{"name": ..., ...}])
    def test_steps(mock_server): ...; mock_server.advance(5); ...

With `--mock-server-url` the tests use a server already running, shared with other jobs
(plugin_remote.py): no server is started, and each session resets and sees only its own token's.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pytest
import uvicorn
from starlette.applications import Starlette

from mock_server import tls
from mock_server.app import create_app
from mock_server.clock import ManualClock
from mock_server.config import OUTPUT_URLS, Settings
from mock_server.context import AppContext
from mock_server.plugin_remote import (
    GLOBAL_OPTIONS,
    RemoteServer,
    ServerHandle,
    SharedServerError,
    new_token,
    python_client_base,
)
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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(MARKER, "mock server (Replicate emulator)")
    group.addoption(
        "--mock-server-url",
        default=None,
        help="use the mock server already running at this URL (shared by many jobs) instead of "
        "starting one (env: MOCK_SERVER_URL)",
    )
    group.addoption(
        "--mock-server-token",
        default=None,
        help="with --mock-server-url: the API token this session sends, and whose state each "
        "test resets (default: a new r8_mock_<uuid> per session and xdist worker)",
    )
    group.addoption(
        "--mock-server-admin-token",
        default=None,
        help="with --mock-server-url: the bearer token for the server's /__admin API "
        "(env: MOCK_SERVER_ADMIN_TOKEN)",
    )


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
        pick = marker_values(request)
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


def marker_values(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The arguments the test's `mock_server` marker gives (None: not given), checked."""
    marker = request.node.get_closest_marker(MARKER)
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(kwargs) - set(MARKER_OPTIONS))
    if marker and (marker.args or unknown):
        raise TypeError(
            f"@pytest.mark.{MARKER} takes only keyword arguments clock, seed, time_scale, "
            f"scenarios and output_urls (got {list(marker.args) + unknown})"
        )
    pick = {k: v for k, v in kwargs.items() if v is not None}
    if "clock" in pick and pick["clock"] not in [m.value for m in ClockMode]:
        raise ValueError(f"clock must be time, polls or manual, not {pick['clock']!r}")
    if "output_urls" in pick:
        _output_urls(pick["output_urls"])
    return pick


def _output_urls(value: Any) -> str:
    if value not in OUTPUT_URLS:
        raise ValueError(f"output_urls must be http or data, not {value!r}")
    return str(value)


def token_for(settings: Settings) -> str:
    """The token the helpers send: the first `--api-token` if the server insists on some."""
    return settings.api_tokens[0] if settings.api_tokens else TOKEN


def point_python_clients(monkeypatch: pytest.MonkeyPatch, server: ServerHandle) -> None:
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

    @overload
    def call(self, fn: Callable[[], Awaitable[T]]) -> T: ...

    @overload
    def call(self, fn: Callable[[], T]) -> T: ...

    def call(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the server's event loop (awaited there when it returns an awaitable). The
        app's state belongs to that thread, and a request's journal entry is written just after
        its response went out: queued behind it, a test's reset or journal read sees every
        request it got an answer to."""

        async def run() -> Any:
            result = fn()
            if inspect.isawaitable(result):
                return await result
            return result

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout=START_TIMEOUT)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class MockServer(ServerHandle):
    """What a test gets from the `mock_server` fixture on the plugin's own server: URLs, the
    token, and control of the server's clock, predictions, scenarios and journal (direct calls
    into its context)."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        settings = self.ctx.settings
        super().__init__(
            live.url, token_for(settings), ca_file=live.ca_file, admin_token=settings.admin_token
        )

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

        async def reset() -> None:
            await self.ctx.reset(**changes)

        self.live.call(reset)

    def _manual_clock(self) -> ManualClock:
        clock = self.ctx.clock
        if not isinstance(clock, ManualClock):
            raise RuntimeError(
                f"the mock server's clock is {self.ctx.settings.clock!r}, not 'manual': use "
                '@pytest.mark.mock_server(clock="manual") to move it'
            )
        return clock

    def _advance(self, seconds: float) -> datetime:
        return self._move(advance=seconds)

    def _set_time(self, when: datetime) -> datetime:
        return self._move(to=when)

    def _move(self, *, advance: float | None = None, to: datetime | None = None) -> datetime:
        clock = self._manual_clock()

        async def move() -> datetime:
            await self.ctx.move_clock(advance=advance, to=to)
            return clock.now()

        return self.live.call(move)

    def now(self) -> datetime:
        return self.ctx.clock.now()

    def add_scenario(self, **fields: Any) -> None:
        """Add a scenario for this test (fields as POST /__admin/scenarios takes)."""
        scenario = parse(fields, self.ctx.scenarios.schema)

        async def add() -> None:
            await self.ctx.add_scenario(scenario)

        self.live.call(add)

    def remove_scenario(self, name: str) -> None:
        async def remove() -> bool:
            return await self.ctx.remove_scenario(name)

        if not self.live.call(remove):
            raise KeyError(f"no scenario named {name!r}")

    def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Journal entries, newest first; `path` matches as a prefix."""

        async def entries() -> list[dict[str, Any]]:
            journal = self.ctx.journal
            found = await journal.find(
                method=method, path=path, model=model, status=status, limit=limit
            )
            return [e.to_json() for e in found]

        return self.live.call(entries)

    def predictions(self) -> list[dict[str, Any]]:
        """Every token's predictions, newest first, as the API shows them (with `owner`)."""
        return super().predictions()


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


@pytest.fixture(scope="session")
def mock_server_remote(pytestconfig: pytest.Config) -> Iterator[RemoteServer | None]:
    """The shared server of `--mock-server-url` (or MOCK_SERVER_URL), None without one; at the
    session's end, what this session's token left there is freed."""
    url = pytestconfig.getoption("mock_server_url") or os.environ.get("MOCK_SERVER_URL")
    if not url:
        yield None
        return
    token = pytestconfig.getoption("mock_server_token") or new_token()
    admin = pytestconfig.getoption("mock_server_admin_token") or os.environ.get(
        "MOCK_SERVER_ADMIN_TOKEN"
    )
    remote = RemoteServer(url, token, admin_token=admin or None)
    try:
        remote.health()
    except Exception as exc:
        pytest.fail(f"--mock-server-url {url}: {exc}", pytrace=False)
    yield remote
    remote.release()


@pytest.fixture
def mock_server(
    request: pytest.FixtureRequest,
    mock_server_remote: RemoteServer | None,
    mock_server_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ServerHandle]:
    """The live server, reset for this test and set up as its `mock_server` marker says; the
    official Python clients' `REPLICATE_*` variables point at it for the test. With
    `--mock-server-url`, the shared server there (only this session's token is reset)."""
    if mock_server_remote is not None:
        yield from _shared_server(request, mock_server_remote, monkeypatch)
        return
    options = Options.of(request, mock_server_settings)
    live: LiveServer = request.getfixturevalue("mock_server_live")
    server = MockServer(live)
    server.reset(**options.changes())
    for data in options.scenarios:
        server.add_scenario(**data)
    point_python_clients(monkeypatch, server)
    yield server
    drop_python_clients()


def _shared_server(
    request: pytest.FixtureRequest, remote: RemoteServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerHandle]:
    """`mock_server` on a shared server: the marker's global settings must be the server's
    already, this token's state is reset, and the marker's scenarios apply to this token only."""
    wanted = marker_values(request)
    server = remote.for_test()
    try:
        server.check(wanted, f"@pytest.mark.{MARKER}({_marker_args(wanted)})")
        server.reset()
        for data in wanted.get("scenarios", ()):
            server.add_scenario(**data)
    except SharedServerError as exc:
        server.remove_added_scenarios()
        pytest.fail(str(exc), pytrace=False)
    except BaseException:
        server.remove_added_scenarios()
        raise
    point_python_clients(monkeypatch, server)
    yield server
    drop_python_clients()
    server.remove_added_scenarios()


def _marker_args(wanted: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={wanted[k]!r}" for k in GLOBAL_OPTIONS if k in wanted)


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
