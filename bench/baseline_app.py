"""The bare Starlette baseline every benchmark is compared with (same server, same JSON library)."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = orjson.dumps({"id": "x" * 26, "padding": "y" * 700})


async def get(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


async def post(request: Request) -> Response:
    data = orjson.loads(await request.body())
    return Response(
        orjson.dumps({"echo": data, "padding": "y" * 450}), media_type="application/json"
    )


app = Starlette(routes=[Route("/get", get), Route("/post", post, methods=["POST"])])
