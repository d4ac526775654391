"""Command line: flags (each also a MOCK_SERVER_* variable) -> Settings -> uvicorn or granian."""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mock_server import tls
from mock_server.config import Settings, SettingsError, bundled, to_env
from mock_server.fixtures import FixtureError, load_fixtures
from mock_server.scenarios import ScenarioError
from mock_server.spec import SpecError, load_spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-server",
        description="Local emulator of the Replicate-style predictions API for FLUX models. "
        "Every flag can also be set as MOCK_SERVER_<FLAG> (e.g. MOCK_SERVER_TIME_SCALE=0.1).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "check", "example-scenarios"],
        default="serve",
        help="serve (default); check: validate the spec, fixtures and scenarios file, then exit; "
        "example-scenarios: print an example --scenarios file",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free port)")
    parser.add_argument("--seed", type=int, help="seed for ids and images (default 0)")
    parser.add_argument(
        "--clock",
        choices=["time", "polls", "manual"],
        help="time: real time x --time-scale (default); polls: each read of a prediction moves it "
        "one status; manual: time moves only through POST /__admin/clock",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        dest="time_scale",
        help="multiply every model's timing (default 1.0; 0 finishes at once)",
    )
    parser.add_argument(
        "--retention",
        type=float,
        dest="retention",
        help="emulate data retention: this many seconds (on the server's clock) after a "
        "prediction ends, its input, output and logs are removed (data_removed: true, output "
        "files 404); the real API keeps API predictions' data about an hour (default: forever)",
    )
    parser.add_argument(
        "--rate-limits",
        choices=["off", "real"],
        dest="rate_limits",
        help="real: the real service's per-token limits (600 creates and 3000 other requests a "
        "minute, bursts of 100 and 500), 429 with Retry-After past them (default off)",
    )
    parser.add_argument(
        "--clock-stall-timeout",
        type=float,
        dest="clock_stall_timeout",
        help="with --clock manual: answer 409 to a create waiting (Prefer: wait), or a client "
        "polling a running prediction, for this many real seconds while the clock stands still "
        "(default: wait as asked)",
    )
    parser.add_argument(
        "--fixtures", dest="fixtures_dir", help="fixtures folder (models/<owner>/<name>.yaml)"
    )
    parser.add_argument(
        "--spec", dest="spec_path", help="OpenAPI document to serve and validate with"
    )
    parser.add_argument(
        "--scenarios",
        dest="scenarios_path",
        help="YAML file of scenario rules to load at start (see `mock-server example-scenarios`)",
    )
    parser.add_argument(
        "--public-url",
        dest="public_url",
        help="base URL for output and prediction URLs (default: the request's host)",
    )
    parser.add_argument(
        "--output-urls",
        choices=["http", "data"],
        dest="output_urls",
        help="http: outputs are file URLs (default); data: outputs are inline data: URIs, which "
        "the official clients return as file objects (FileOutput)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="serve HTTPS with a certificate for 127.0.0.1/localhost from a local CA made at "
        "start; the CA is written to --tls-ca-file for clients to trust",
    )
    parser.add_argument(
        "--tls-ca-file",
        dest="tls_ca_file",
        help="where --tls writes its CA certificate (default <tempdir>/mock-server-ca.pem)",
    )
    parser.add_argument(
        "--tls-cert", dest="tls_cert", help="serve HTTPS with this certificate (PEM) instead"
    )
    parser.add_argument(
        "--tls-key", dest="tls_key", help="the key of --tls-cert (default: inside --tls-cert)"
    )
    parser.add_argument(
        "--api-token",
        dest="api_tokens",
        action="append",
        help="accept only this bearer token (repeatable; default: any token)",
    )
    parser.add_argument(
        "--webhook-allow-host",
        dest="webhook_allow_hosts",
        action="append",
        help="accept only webhooks to this host (repeatable; default: any host)",
    )
    parser.add_argument(
        "--webhooks",
        choices=["send", "record"],
        dest="webhooks",
        help="send (default): deliver webhooks; record: sign and list each delivery in "
        "/__admin/webhooks as delivered without sending it (no network, e.g. in CI)",
    )
    parser.add_argument(
        "--admin-token",
        dest="admin_token",
        help="require this bearer token on /__admin (default: the admin API is open)",
    )
    parser.add_argument(
        "--store",
        dest="store",
        help="where state lives: memory (default; this process only) or redis://HOST:PORT/DB, "
        "shared by every worker and replica and kept across restarts",
    )
    parser.add_argument(
        "--workers",
        type=int,
        dest="workers",
        help="worker processes on one port (default 1; more than 1 needs --store redis://...)",
    )
    parser.add_argument(
        "--redis-timeout",
        type=float,
        dest="redis_timeout",
        help="seconds a Redis command may take before the request gets a 503 (default 2)",
    )
    parser.add_argument(
        "--max-predictions",
        type=int,
        dest="max_predictions",
        help="predictions kept; past it the oldest finished ones are forgotten (default 200000)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, dest="max_body_bytes", help="request body limit"
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        dest="max_file_bytes",
        help="largest file POST /v1/files accepts (413 above; default 10 MiB), also the largest "
        "input image --fetch-inputs reads",
    )
    parser.add_argument(
        "--max-files",
        type=int,
        dest="max_files",
        help="files one token may keep at once (409 above; default 1000)",
    )
    parser.add_argument(
        "--fetch-inputs",
        action="store_true",
        default=None,
        dest="fetch_inputs",
        help="download http(s) input images that are not this server's own, so their size "
        "drives the output; one that cannot be read fails the prediction (default: offline, "
        "such an image's size is unknown)",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        dest="fetch_timeout",
        help="seconds allowed for each --fetch-inputs download (default 10)",
    )
    parser.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        help="the HTTP server: uvicorn (default) or granian, which serves about 1.7 times the "
        "gets per second (install the extra: pip install 'replicate-flux-emulator[granian]')",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        dest="access_log",
        help="log every request (halves throughput)",
    )
    return parser


PATH_FLAGS = (
    "fixtures_dir",
    "spec_path",
    "scenarios_path",
    "tls_ca_file",
    "tls_cert",
    "tls_key",
)


def settings_from(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[str, Settings]:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    for key in ("api_tokens", "webhook_allow_hosts"):
        if args.get(key):
            args[key] = tuple(args[key])
    for key in PATH_FLAGS:
        if args.get(key):
            args[key] = Path(args[key])
    return command, Settings.from_env(environ, **args)


def check(settings: Settings) -> int:
    """Validate the spec (OpenAPI rules, then against the route table) and every fixture; name
    the file and field of the first problem."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    from mock_server.app import create_app

    try:
        spec = load_spec(settings.spec_path)
        try:
            validate(spec.document)
        except OpenAPIValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(document)"
            message = exc.message.splitlines()[0]
            raise SpecError(f"{settings.spec_path}: {where}: {message}") from None
        models = load_fixtures(settings.fixtures_dir)
        create_app(settings)  # every route must find its operation in the spec
    except (SpecError, FixtureError, ScenarioError) as exc:
        sys.stderr.write(f"mock-server check: {exc}\n")
        return 1
    sys.stdout.write(f"ok: {settings.spec_path} and {len(models)} model fixtures\n")
    return 0


def serve(settings: Settings) -> int:
    from mock_server.app import create_app

    if settings.server == "granian" and importlib.util.find_spec("granian") is None:
        sys.stderr.write(
            "mock-server: --server granian needs granian: "
            "pip install 'replicate-flux-emulator[granian]'\n"
        )
        return 2
    try:
        app = create_app(settings)  # with --workers, a check that every worker will start
    except (SpecError, FixtureError, ScenarioError) as exc:
        sys.stderr.write(f"mock-server: {exc}\n")
        return 1
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        # Listen before saying so: a client that reads the URL connects at once (connections wait
        # in the backlog until uvicorn accepts them, instead of being refused).
        sock.listen(2048)
    except OSError as exc:
        sys.stderr.write(f"mock-server: cannot listen on {settings.host}:{settings.port}: {exc}\n")
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # The server's key lives in a private folder only while the server runs.
    with tempfile.TemporaryDirectory(prefix="mock-server-tls-") as keys:
        try:
            certs = tls.certificates(settings, Path(keys)) if settings.https else None
        except tls.TlsError as exc:
            sys.stderr.write(f"mock-server: {exc}\n")
            return 1
        if settings.server == "granian":
            return serve_granian(settings, sock, tls.listening(f"{shown}:{port}", certs), certs)
        sys.stdout.write(tls.listening(f"{shown}:{port}", certs))
        sys.stdout.flush()
        serve_uvicorn(app, settings, sock, certs)
    return 0


def serve_uvicorn(
    app: Any, settings: Settings, sock: socket.socket, certs: tls.Certificates | None
) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        app if settings.workers == 1 else "mock_server.app:create_app",
        factory=settings.workers > 1,
        workers=settings.workers,
        http="httptools",
        loop="uvloop",
        access_log=settings.access_log,
        log_level="info" if settings.access_log else "warning",
        server_header=False,
        ssl_certfile=certs.certfile if certs else None,
        ssl_keyfile=certs.keyfile if certs else None,
    )
    if settings.workers == 1:
        settle_gc()
        uvicorn.Server(config).run(sockets=[sock])
    else:
        # Each worker builds its own app from the same settings (create_app() reads them
        # from the environment) and shares the listening socket; state is in Redis.
        os.environ.update(to_env(settings))
        Multiprocess(config, sockets=[sock]).run()


def serve_granian(
    settings: Settings, sock: socket.socket, message: str, certs: tls.Certificates | None
) -> int:
    """granian binds its own socket (it takes no file descriptor): the port this process found
    free (--port 0) is handed over, and the URL is printed once granian accepts connections.
    Its workers build the app from the settings, passed as MOCK_SERVER_* variables."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    host, port = sock.getsockname()[:2]
    sock.close()
    os.environ.update(to_env(replace(settings, port=port)))
    server = Granian(
        "mock_server.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        backlog=2048,
        log_level=LogLevels.info if settings.access_log else LogLevels.warning,
        log_access=settings.access_log,
        ssl_cert=certs.certfile if certs else None,
        ssl_key=(certs.keyfile or certs.certfile) if certs else None,  # a PEM with both
    )
    announcer = threading.Thread(target=_announce, args=(host, port, message), daemon=True)
    announcer.start()
    server.serve()
    return 0


def _announce(host: str, port: int, message: str, limit: float = 60.0) -> None:
    """Print the start message once the port accepts connections (bounded by `limit`)."""
    deadline = time.monotonic() + limit
    pause = threading.Event()  # never set: the poll interval between attempts
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                sys.stdout.write(message)
                sys.stdout.flush()
                return
        except OSError:
            pause.wait(0.05)
    sys.stderr.write(f"mock-server: granian did not listen on {host}:{port} in {limit:g} s\n")


def settle_gc() -> None:
    """Before serving: what start-up built (the spec, fixtures, validators) never becomes
    garbage, so the collector stops scanning it (gc.freeze), and young collections run ten
    times less often: a server holding many predictions pauses less behind its p99."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(7000, middle, old)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        command, settings = settings_from(argv, os.environ)
    except (SettingsError, ValueError) as exc:
        sys.stderr.write(f"mock-server: {exc}\n")
        return 2
    if command == "example-scenarios":
        sys.stdout.write(bundled("examples/scenarios.yaml").read_text(encoding="utf-8"))
        return 0
    return check(settings) if command == "check" else serve(settings)
