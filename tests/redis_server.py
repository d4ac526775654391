"""A throwaway redis-server for tests: Debian's /usr/bin/redis-server (`make test` installs it) on
a free 127.0.0.1 port, in its own folder, nothing persisted.

`RedisServer.start(folder)` returns once it answers PING (bounded), then offers `url`,
`command(...)`, `flush()`, `dbsize()`, `pause()` (SIGSTOP: it keeps its connections and answers
nothing, as a hung Redis does), `resume()` (SIGCONT) and `stop()`. It talks to the server with
redis-py (the project's own Redis client), a fresh connection per call and no retries: a failure
shows at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5  # a port found free may be taken before redis-server binds it
# Loopback only, nothing written to disk, in the foreground, quiet.
CONFIG = (
    "--bind", "127.0.0.1",
    "--protected-mode", "yes",
    "--save", "",
    "--appendonly", "no",
    "--daemonize", "no",
    "--loglevel", "warning",
)  # fmt: skip


class RedisServerMissing(RuntimeError):
    """redis-server is not installed."""


def redis_server_path() -> str:
    """Debian's redis-server, or one on PATH; RedisServerMissing (saying how to get it) if none."""
    if os.access(REDIS_SERVER, os.X_OK):
        return REDIS_SERVER
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisServerMissing(
        "redis-server is not installed: run `make test` (it installs it) or "
        "`apt-get install -y redis-server`. The Redis tests are never skipped."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, folder: Path) -> None:
        self.proc = proc
        self.port = port
        self.folder = folder
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.folder / "redis.log"

    @classmethod
    def start(cls, folder: Path) -> RedisServer:
        """A redis-server on a free port with `folder` as its working directory and log."""
        executable = redis_server_path()
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            with (folder / "redis.log").open("ab") as log:
                proc = subprocess.Popen(
                    [executable, "--port", str(port), "--dir", str(folder), *CONFIG],
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            server = cls(proc, port, folder)
            if server._wait_ready():
                return server
            server.stop()
            if "Address already in use" not in server.log.read_text(errors="replace"):
                break
        raise RuntimeError(
            f"redis-server did not answer PING within {START_TIMEOUT_S} s:\n"
            f"{(folder / 'redis.log').read_text(errors='replace')[-2000:]}"
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.ping(timeout=0.5):
                return True
            try:  # the pause between tries, which also notices an early exit
                self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            return False  # exited (e.g. the port was taken)
        return False

    def client(self, db: int = 0, timeout: float = 5.0) -> redis.Redis:
        """A redis-py client for this server (close it: `with server.client() as r: ...`)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def command(self, *args: str | bytes, timeout: float = 5.0) -> Any:
        """Send one command; its reply as redis-py parses it (a Redis error raises
        redis.ResponseError)."""
        with self.client(timeout=timeout) as r:
            return r.execute_command(*args)

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            with self.client(timeout=timeout) as r:
                return bool(r.ping())
        except (redis.RedisError, OSError):
            return False

    def flush(self) -> None:
        with self.client() as r:
            if not r.flushall():
                raise RuntimeError("FLUSHALL failed")

    def dbsize(self, db: int = 0) -> int:
        with self.client(db=db) as r:
            size: int = r.dbsize()
            return size

    def pause(self) -> None:
        """SIGSTOP: connections stay open (and new ones are queued by the kernel), nothing
        answers."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.paused:
                with contextlib.suppress(ProcessLookupError):
                    self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
