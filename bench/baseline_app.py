"""The bare Starlette baseline every benchmark is compared with (same server, same JSON library).

Routes, each doing the least work a route of its kind can:

- `GET /json` and `GET /json/<name>`: a fixed JSON body (`/json` is the finished prediction);
- `POST /echo`: parses the posted JSON and answers 201 with a fixed create-sized document whose
  `input` is the posted one (an echo the size of a real create's answer);
- `GET /bytes`: fixed bytes (image/webp) the size of a real rendered output.

(`/get` and `/post`, the routes' earlier names, still answer as `/json` and `/echo`.)

`python -m bench.run` captures the bodies from the emulator (a real running and finished
prediction, a create's answer, a list page, an output file's size) and passes them in the file
named by BENCH_BASELINE_BODIES; without it, synthetic bodies of about the same sizes are used.

    python -m bench.baseline_app [--workers N]

serves it as `mock-server` serves the emulator (uvicorn, httptools, uvloop, no access log, no
server header, a socket bound on 127.0.0.1 port 0 first) and prints `listening on URL`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.serve import serve

BODIES_ENV = "BENCH_BASELINE_BODIES"


def _bodies() -> dict[str, Any]:
    path = os.environ.get(BODIES_ENV)
    if path:
        with open(path, "rb") as f:
            loaded: dict[str, Any] = orjson.loads(f.read())
            return loaded
    finished = {"id": "x" * 26, "padding": "y" * 1100}
    return {
        "json": {"finished": finished, "running": {"id": "x" * 26, "padding": "y" * 600}},
        "create": {"id": "x" * 26, "input": {}, "padding": "y" * 550},
        "bytes": 30_000,
    }


BODIES = _bodies()
CREATE_TEMPLATE: dict[str, Any] = BODIES["create"]
BYTES = b"\x00" * int(BODIES["bytes"])


def fixed(body: bytes) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return endpoint


def json_routes() -> list[Route]:
    routes = []
    for name, document in BODIES["json"].items():
        body = orjson.dumps(document)
        routes.append(Route(f"/json/{name}", fixed(body)))
        if name == "finished":
            routes.append(Route("/json", fixed(body)))
            routes.append(Route("/get", fixed(body)))  # the names scripts used before
    return routes


async def echo(request: Request) -> Response:
    data = orjson.loads(await request.body())
    answer = {**CREATE_TEMPLATE, "input": data.get("input")}
    return Response(orjson.dumps(answer), status_code=201, media_type="application/json")


async def raw_bytes(request: Request) -> Response:
    return Response(BYTES, media_type="image/webp")


app = Starlette(
    routes=[
        *json_routes(),
        Route("/echo", echo, methods=["POST"]),
        Route("/post", echo, methods=["POST"]),
        Route("/bytes", raw_bytes),
    ]
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    return serve("bench.baseline_app:app", workers=parser.parse_args().workers)


if __name__ == "__main__":
    raise SystemExit(main())
