"""The happy paths of the hottest routes, answered from the ASGI scope without building a
Request: a client polling its own prediction, an output file already rendered, and a plain
create (a valid JSON input with no image inputs, no webhook, no Prefer or Cancel-After).
Anything else (no or refused token, an unknown id, a query string, a body that does not
validate, a scenario that could apply, rate limits, the polls clock, an image not yet
rendered...) is handed to the ordinary route, which says what is wrong: the answers are the same
either way, byte for byte. With a shared store both ways first catch up with the other
processes, once per request."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from mock_server import ids
from mock_server.auth import owner_of
from mock_server.context import AppContext
from mock_server.errors import handle_api_error
from mock_server.images import MEDIA_TYPES
from mock_server.inputs import image_inputs
from mock_server.models import Status
from mock_server.operations import Operation
from mock_server.responses import COMET_PREFIX, REPLICATE_PREFIX, created_status
from mock_server.routes.files import _FILENAME, CACHE_CONTROL
from mock_server.routes.predictions import STARTING, _body, location, store_new
from mock_server.timeline import ClockMode
from mock_server.validation import MAX_DEPTH, too_deep
from mock_server.views import prediction_json

_JSON = (b"content-type", b"application/json")
# A prediction by id, or the creates of a model, under either prefix.
HOT = re.compile(
    r"^(/replicate/v1|/v1)/(?:predictions/([^/]+)|models/([^/]+)/([^/]+)/predictions)$"
)
DELIVERY = re.compile(r"^/delivery/([^/]+)/([^/]+)$")


class FastRoutes:
    """The fast paths in front of the Starlette app: `await fast(scope, receive, send)` is None
    once a request is answered, else the receive to pass on with it (replaying any body read).
    Each fast path is on only while the spec gives its operation no check it skips."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        get = ctx.operations["getPrediction"]
        self.fast_get = not get.query and not get.headers
        file = ctx.operations["getOutputFile"]
        self.fast_file = not file.query and not file.headers and not file.secured
        # The fast create hands on any request with a header the spec checks (Prefer...).
        self.fast_create = {
            prefix: CreateRoute.of(op)
            for prefix, op in (
                (COMET_PREFIX, ctx.operations["createPrediction"]),
                (REPLICATE_PREFIX, ctx.operations["v1_createPrediction"]),
            )
            if op.secured
            and not any(q.required for q in op.query.values())
            and not any(h.required for h in op.headers.values())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        try:
            return await self._answer(scope, receive, send)
        except Exception as exc:  # the store away (503), or a bug: answered as the app does
            response = await handle_api_error(Request(scope), exc)
            await response(scope, receive, send)
            return None

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        path, method, ctx = scope["path"], scope["method"], self.ctx
        if method == "GET" and self.fast_file and (d := DELIVERY.match(path)) is not None:
            return None if await get_output_file(ctx, scope, send, *d.groups()) else receive
        m = HOT.match(path)
        if m is None:
            return receive
        prefix, prediction_id, owner, name = m.groups()
        if prediction_id is not None and method == "GET" and self.fast_get:
            return (
                None if await get_prediction(ctx, scope, send, prefix, prediction_id) else receive
            )
        fast = self.fast_create.get(prefix) if owner is not None and method == "POST" else None
        if fast is None:
            return receive
        return await create_prediction(ctx, scope, receive, send, fast, prefix, f"{owner}/{name}")


async def eligible(ctx: AppContext, scope: Scope) -> bool:
    """Whether this server's set-up lets a request skip the ordinary checks at all (with a
    shared store: once caught up with the other processes, as the ordinary route is)."""
    await ctx.sync_request(scope)
    return (
        ctx.rate_limiter is None
        and not ctx.stall.active
        and ctx.timeline.mode is not ClockMode.POLLS
        and not ctx.scenarios.active(None)
    )


_SCENARIO = frozenset([b"x-mock-scenario"])


def _headers(scope: Scope, handed: frozenset[bytes]) -> dict[bytes, bytes] | None:
    """The request's headers, the first value of each (as Starlette's `headers.get` reads
    them); None when one of `handed` is present (the request goes the ordinary way)."""
    found: dict[bytes, bytes] = {}
    for key, value in scope["headers"]:
        if key in handed:
            return None
        found.setdefault(key, value)
    return found


def _base(ctx: AppContext, scope: Scope, headers: dict[bytes, bytes]) -> str:
    host = headers.get(b"host")
    return ctx.base_of(scope, host.decode("latin-1") if host is not None else None)


def _owner(ctx: AppContext, authorization: bytes | None) -> str | None:
    """The caller's owner key when the token is well formed and allowed; None otherwise."""
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or not token or " " in token:
        return None
    if ctx.allowed_tokens and token not in ctx.allowed_tokens:
        return None
    return owner_of(token)


async def get_prediction(
    ctx: AppContext, scope: Scope, send: Send, prefix: str, prediction_id: str
) -> bool:
    """Answer `GET <prefix>/predictions/<id>` if it is the plain case; False otherwise."""
    if scope["query_string"] or not ids.is_valid(prediction_id):
        return False
    if not await eligible(ctx, scope):
        return False
    headers = _headers(scope, _SCENARIO)
    if headers is None:
        return False
    owner = _owner(ctx, headers.get(b"authorization"))
    if owner is None:
        return False
    p = await ctx.store.get(prediction_id)
    if p is None or p.owner != owner:
        return False
    body = await _body(ctx, p, _base(ctx, scope, headers), prefix)
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
    if scope["query_string"] or not await eligible(ctx, scope):
        return False
    if _headers(scope, _SCENARIO) is None:
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


@dataclass(frozen=True)
class CreateRoute:
    """A create operation as the fast path needs it, worked out once at start."""

    op: Operation
    handed: frozenset[bytes]  # a create with one of these headers goes the ordinary way

    @classmethod
    def of(cls, op: Operation) -> CreateRoute:
        """Those the spec checks (Prefer, Cancel-After), and the scenario selector."""
        headers = [b"x-mock-scenario", *(name.encode("latin-1") for name in op.headers)]
        return cls(op, frozenset(headers))


async def create_prediction(
    ctx: AppContext,
    scope: Scope,
    receive: Receive,
    send: Send,
    route: CreateRoute,
    prefix: str,
    model: str,
) -> Receive | None:
    """Answer `POST <prefix>/models/<model>/predictions` if it is the plain case: None once
    answered, else the receive the ordinary route reads the request with (it replays any body
    read here)."""
    op, handed = route.op, route.handed
    fixture = ctx.models.get(model)
    if scope["query_string"] or fixture is None or not await eligible(ctx, scope):
        return receive
    headers = _headers(scope, handed)  # Prefer, Cancel-After, X-Mock-Scenario: handed on
    if headers is None:
        return receive
    owner = _owner(ctx, headers.get(b"authorization"))
    content_type, length = headers.get(b"content-type"), headers.get(b"content-length")
    limit = ctx.settings.max_body_bytes
    if (
        owner is None
        or (content_type is not None and content_type.split(b";")[0].strip().lower() != _JSON[1])
        or (length is not None and (not length.isdigit() or int(length) > limit))
    ):
        return receive
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return _replay(messages, receive)
        size += len(message.get("body", b""))
        if size > limit:
            return _replay(messages, receive)
        if not message.get("more_body", False):
            break
    try:
        body = orjson.loads(b"".join(m.get("body", b"") for m in messages))
    except orjson.JSONDecodeError:
        return _replay(messages, receive)
    inp = body.get("input") if type(body) is dict else None
    if (
        type(inp) is not dict
        or "webhook" in body
        or too_deep(body, MAX_DEPTH)
        or not fixture.validator.fast.is_valid(inp)
        or (op.body is not None and not op.body.fast.is_valid(body))
        or image_inputs(fixture, inp)
    ):
        return _replay(messages, receive)
    p = await store_new(ctx, owner, fixture, body)
    base = _base(ctx, scope, headers)
    answer = orjson.dumps(prediction_json(p, STARTING, fixture, base=base, prefix=prefix))
    await send(
        {
            "type": "http.response.start",
            "status": created_status(prefix),
            "headers": [
                (b"content-length", b"%d" % len(answer)),
                _JSON,
                (b"location", location(p, base, prefix).encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, then what `receive` gives."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
