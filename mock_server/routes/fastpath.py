"""The happy paths of the hottest reads, a client polling its own prediction and an output file
already rendered, answered from the ASGI scope without building a Request. Anything else (no or
refused token, an unknown id, a query string, a scenario that could apply, rate limits, the
polls clock, a shared store, an image not yet rendered...) returns False and the request takes
the ordinary route, which says what is wrong: the answers are the same either way, byte for
byte."""

from __future__ import annotations

from starlette.types import Scope, Send

from mock_server import ids
from mock_server.auth import owner_of
from mock_server.context import AppContext
from mock_server.images import MEDIA_TYPES
from mock_server.models import Status
from mock_server.routes.files import _FILENAME, CACHE_CONTROL
from mock_server.routes.predictions import _body
from mock_server.timeline import ClockMode

_JSON = (b"content-type", b"application/json")


def eligible(ctx: AppContext) -> bool:
    """Whether this server's set-up lets a get skip the ordinary checks at all."""
    return (
        ctx.shared is None
        and ctx.rate_limiter is None
        and not ctx.stall.active
        and ctx.timeline.mode is not ClockMode.POLLS
        and not ctx.scenarios.active(None)
    )


async def get_prediction(
    ctx: AppContext, scope: Scope, send: Send, prefix: str, prediction_id: str
) -> bool:
    """Answer `GET <prefix>/predictions/<id>` if it is the plain case; False otherwise."""
    if scope["query_string"] or not eligible(ctx) or not ids.is_valid(prediction_id):
        return False
    authorization = host = None
    for key, value in scope["headers"]:
        if key == b"authorization":
            if authorization is None:
                authorization = value
        elif key == b"host":
            if host is None:
                host = value
        elif key == b"x-mock-scenario":
            return False
    if authorization is None:
        return False
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or not token or " " in token:
        return False
    if ctx.allowed_tokens and token not in ctx.allowed_tokens:
        return False
    p = await ctx.store.get(prediction_id)
    if p is None or p.owner != owner_of(token):
        return False
    base = ctx.base_of(scope, host.decode("latin-1") if host else None)
    body = await _body(ctx, p, base, prefix)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body)), _JSON],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return True


_CACHE = (b"cache-control", CACHE_CONTROL.encode())


async def get_output_file(
    ctx: AppContext, scope: Scope, send: Send, prediction_id: str, name: str
) -> bool:
    """Answer `GET /delivery/<id>/<file>` when the image is in the cache; False otherwise."""
    if scope["query_string"] or not eligible(ctx):
        return False
    if any(key == b"x-mock-scenario" for key, _ in scope["headers"]):
        return False
    match = _FILENAME.match(name)
    p = await ctx.store.get(prediction_id) if match is not None else None
    if match is None or p is None:
        return False
    index, ext = int(match.group(1)), match.group(2)
    if ext != p.fmt or index >= p.outputs:
        return False
    state = ctx.state(p)
    if state.status is not Status.SUCCEEDED or state.data_removed:
        return False
    data = ctx.images.peek(f"{p.id}/{index}")  # rendering stays with the ordinary route
    if data is None:
        return False
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                _CACHE,
                (b"content-length", b"%d" % len(data)),
                (b"content-type", MEDIA_TYPES[ext].encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
    return True
