"""Child processes of the benchmarks: servers on 127.0.0.1, started, awaited and always stopped.

Each server is started by `Proc.start` with its output in a log file, and is ready once it
prints its URL (`listening on http://127.0.0.1:PORT`, the emulator's and the bench launchers'
line) or, for servers that print nothing, once `ready` says so. `Proc.stop` sends SIGTERM to the
process, waits, then SIGKILLs it and every process it started (found through /proc, by id: uvicorn
and granian worker processes). Direct children also get PR_SET_PDEATHSIG, so a benchmark killed
outright takes its servers with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")
REDIS_SERVER = "/usr/bin/redis-server"
PR_SET_PDEATHSIG = 1


def cpu_split() -> tuple[str, str] | None:
    """(the load generator's CPUs, a single-process server's CPU) for `taskset -c`: wrk and the
    server measured must not take turns on the same cores (on 2 cores, sharing them moved one
    p99 by 5x between runs). None where taskset is missing or there is one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(cpus) < 2:
        return None
    return ",".join(map(str, cpus[:-1])), str(cpus[-1])


CPUS = cpu_split()


def pinned(args: Sequence[str], cpus: str | None) -> list[str]:
    """`args` run on `cpus` only (as given when `cpus` is None)."""
    return ["taskset", "-c", cpus, *args] if cpus else list(args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_environ() -> dict[str, str]:
    """This process's environment without MOCK_SERVER_* settings: every server is configured
    only by what the benchmark passes."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCK_SERVER_")}


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status: int = resp.status
            return 200 <= status < 300
    except (OSError, urllib.error.URLError):
        return False


class ProcError(RuntimeError):
    """A child did not start (its log's tail is in the message)."""


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.url = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(
        cls,
        name: str,
        args: Sequence[str],
        logs: Path,
        *,
        env: Mapping[str, str] | None = None,
        url: str | None = None,
        ready: Callable[[str], bool] | None = None,
        timeout: float = 60.0,
    ) -> Proc:
        """Start `args` and wait (up to `timeout` s) until it is ready: its `listening on` line
        when `url` is None, else `ready(url)` (default: an HTTP 2xx from `url`)."""
        proc = cls.spawn(name, args, logs, env=env)
        proc.wait_ready(url, ready, timeout)
        return proc

    @classmethod
    def spawn(
        cls, name: str, args: Sequence[str], logs: Path, *, env: Mapping[str, str] | None = None
    ) -> Proc:
        """Start `args`, output to `<logs>/<name>.log`, without waiting for anything."""
        log = logs / f"{name}.log"
        full_env = {**clean_environ(), **(env or {}), "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(args),
                cwd=ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # the parent is single-threaded
            )
        return cls(name, popen, log)

    def wait_ready(
        self,
        url: str | None = None,
        ready: Callable[[str], bool] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Wait as `start` does; on failure the process is stopped and ProcError raised."""
        try:
            self._wait_ready(url, ready or http_ok, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, url: str | None, ready: Callable[[str], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ProcError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            if url is None:
                found = LISTENING.search(self.log.read_text(errors="replace"))
                if found:
                    self.url = found.group(1)
                    return
            elif ready(url):
                self.url = url
                return
            time.sleep(0.05)
        raise ProcError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, up to `grace` s to exit, then SIGKILL for it and anything it started."""
        below = descendants(self.pid) if self.popen.poll() is None else []
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        deadline = time.monotonic() + grace
        for pid in below:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_redis(logs: Path, attempts: int = 5) -> tuple[Proc, str]:
    """A private redis-server on a free 127.0.0.1 port: its own folder, nothing persisted."""
    folder = logs / "redis"
    folder.mkdir(exist_ok=True)
    last: Exception | None = None
    for _ in range(attempts):  # a port found free may be taken before redis binds it
        port = free_port()
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        try:
            proc = Proc.start("redis", args, logs, url=f"127.0.0.1:{port}", ready=_redis_pong)
        except ProcError as exc:
            last = exc
            continue
        return proc, f"redis://127.0.0.1:{port}/0"
    raise ProcError(f"redis-server did not start: {last}")


def _redis_pong(address: str) -> bool:
    host, port = address.split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
