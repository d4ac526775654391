"""Serving a bench app the way `mock-server` serves the emulator (mock_server/cli.py `serve`):
uvicorn with httptools and uvloop, no access log, no server header, on a socket bound and
listening before `listening on URL` is printed (port 0: a free port, no race)."""

from __future__ import annotations

import socket
import sys
from typing import Any


def serve(target: Any, *, workers: int = 1, factory: bool = False) -> int:
    """Serve `target` (an ASGI app, or an import string; with workers > 1 it must be a string)
    on 127.0.0.1 until SIGTERM/SIGINT."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        target,
        factory=factory,
        workers=workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    sys.stdout.write(f"listening on http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
    else:
        Multiprocess(config, sockets=[sock]).run()
    return 0
