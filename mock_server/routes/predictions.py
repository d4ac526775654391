"""Create, get, cancel and list predictions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mock_server import ids, inputs, rfc3339
from mock_server.context import AppContext, Call
from mock_server.errors import BadRequest, InvalidVersion, NotFound
from mock_server.fixtures import ModelFixture
from mock_server.headers import cancel_after_seconds, prefer_wait
from mock_server.lifecycle import State, end_of
from mock_server.logs import step_count
from mock_server.models import Prediction, Status
from mock_server.outputs import inline_outputs
from mock_server.paging import parse_cursor
from mock_server.responses import JSONBytes, api_prefix, created_status, json_response
from mock_server.scenarios import Scenario, apply_http, apply_to_prediction
from mock_server.sizes import Measure, data_uri_size, output_size
from mock_server.timeline import ClockMode
from mock_server.validation import problems, raise_problems, read_json_object
from mock_server.views import prediction_json
from mock_server.webhooks import events_filter, target_problems

PAGE_SIZE = 100
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_FORMATS = ("webp", "jpg", "png")


async def create_prediction(request: Request, call: Call) -> Response:
    c = call.ctx
    fixture = c.model(request.path_params["model_owner"], request.path_params["model_name"])
    body = await read_json_object(request, c.settings.max_body_bytes)
    _validate(call, body, fixture)
    return await _create(request, c, call.owner, fixture, body)


async def create_prediction_by_version(request: Request, call: Call) -> Response:
    c = call.ctx
    body = await read_json_object(request, c.settings.max_body_bytes)
    version = body.get("version")
    if not isinstance(version, str):
        _validate(call, body, None)  # names the missing or mistyped `version`
        raise InvalidVersion()
    # An unknown version is Replicate's own 422, not a schema problem (the spec lists the enum).
    fixture = _resolve_version(c, version)
    _validate(call, body, fixture)
    del body["version"]
    return await _create(request, c, call.owner, fixture, body)


def _validate(call: Call, body: dict[str, Any], fixture: ModelFixture | None) -> None:
    """One 422 naming every problem, as Replicate does: the model's own input schema (when
    `input` is an object) and the spec's body schema (top-level keys, `input`, `webhook`...)."""
    inp = body.get("input")
    own = problems(fixture.validator, inp, "input") if fixture and isinstance(inp, dict) else []
    general = problems(call.op.body, body, "") if call.op.body is not None else []
    hook = target_problems(body, call.ctx.settings.webhook_allow_hosts)  # http(s), allowed host
    raise_problems(own, hook, general)  # for `webhook`, its plainer words


def _resolve_version(c: AppContext, ref: str) -> ModelFixture:
    """`owner/name`, `owner/name:<version id>` or a bare version id."""
    name, _, version = ref.partition(":")
    if "/" in name:
        fixture = c.models.get(name)
        if fixture is not None and version in ("", fixture.version):
            return fixture
    elif not version and _VERSION_ID.match(name) and name in c.by_version:
        return c.by_version[name]
    raise InvalidVersion()


async def _create(
    request: Request, c: AppContext, owner: str, fixture: ModelFixture, body: dict[str, Any]
) -> Response:
    inp = body["input"]
    wait = prefer_wait(request.headers.getlist("prefer"))
    cancel_after = cancel_after_seconds(request.headers.get("cancel-after"))
    prompt = inp.get("prompt") if isinstance(inp.get("prompt"), str) else None
    scenarios = await c.scenarios_for(request, "createPrediction", fixture.ref, prompt)
    await apply_http(scenarios)  # a forced HTTP error stores nothing
    images = await inputs.resolve(c, request, owner, fixture, inp)  # sizes, or why it fails
    p = await store_new(c, owner, fixture, body, images, scenarios, cancel_after)
    prefix = api_prefix(request.scope["path"])
    base = c.public_base(request)
    if p.webhook is not None:
        # Delivered later, never in this request.
        await c.webhooks.schedule(p, base=base, prefix=prefix)
    headers = {"Location": location(p, base, prefix)}
    # Without `Prefer: wait` a create answers `starting` whatever the timing, as the real API does.
    state = STARTING
    if wait is not None:
        state = await _wait(c, p, wait.seconds)
        headers["Preference-Applied"] = wait.applied()
    files = await inline_outputs(c, p, state)
    data = prediction_json(p, state, fixture, base=base, prefix=prefix, files=files)
    return json_response(data, created_status(prefix), headers=headers)


STARTING = State(Status.STARTING, None, None, 0.0)
_NO_IMAGES = inputs.InputImages()


async def store_new(
    c: AppContext,
    owner: str,
    fixture: ModelFixture,
    body: dict[str, Any],
    images: inputs.InputImages = _NO_IMAGES,
    scenarios: Sequence[Scenario] = (),
    cancel_after: float | None = None,
) -> Prediction:
    """The prediction a valid create body makes, stored: its sizes follow the measured image
    inputs, then the scenarios and the Cancel-After deadline apply."""
    inp = body["input"]
    key = ids.request_key(c.settings.seed, owner, fixture.ref, inp)

    def build(occurrence: int) -> Prediction:
        p = _prediction(c, owner, fixture, inp, images.measure, key, occurrence)
        images.apply(p)
        p.webhook = body.get("webhook")
        p.webhook_events_filter = events_filter(body.get("webhook_events_filter"))
        apply_to_prediction(scenarios, p, c.settings.time_scale)
        if cancel_after is not None:
            p.deadline = p.created_at + timedelta(seconds=cancel_after)
        return p

    return await c.store.create(owner, key, build)


def location(p: Prediction, base: str, prefix: str) -> str:
    return f"{base}{prefix}/predictions/{p.id}"


async def _wait(c: AppContext, p: Prediction, seconds: int) -> State:
    """Sync mode: hold the create until the prediction ends or `seconds` pass on the clock.

    At the limit the answer is `starting`: the official clients poll only from that status.
    """
    if c.timeline.mode is ClockMode.POLLS:
        p.reads = 2  # waiting is polling to the end
        await c.store.save(p)
    else:
        # Wait on the condition, not on one sleep: a clock may wake early, and the end may move
        # (a cancel, a forced end). `seconds` bounds it on the clock and in real time.
        limit = p.created_at + timedelta(seconds=seconds)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + seconds
        while not c.state(p).status.terminal and c.clock.now() < limit:
            remaining = give_up - loop.time()
            if remaining <= 0:
                break
            end, _ = end_of(p)
            await c.stall.sleep_until(min(end, limit), limit=remaining)
    state = c.state(p)
    return state if state.status.terminal else STARTING


async def _new_prediction(
    c: AppContext,
    owner: str,
    fixture: ModelFixture,
    inp: dict[str, Any],
    measure: Measure = data_uri_size,
) -> Prediction:
    """The record a create of `inp` makes, counted in the store (not stored)."""
    key = ids.request_key(c.settings.seed, owner, fixture.ref, inp)
    occurrence = await c.store.next_occurrence(owner, key)
    return _prediction(c, owner, fixture, inp, measure, key, occurrence)


def _prediction(
    c: AppContext,
    owner: str,
    fixture: ModelFixture,
    inp: dict[str, Any],
    measure: Measure,
    key: str,
    occurrence: int,
) -> Prediction:
    """The `occurrence`-th (0-based) create of `inp` with this request key."""
    effective = fixture.effective_input(inp)
    width, height = output_size(fixture.size, effective, measure)
    fmt = effective.get("output_format", "webp")
    quality = effective.get("output_quality", 80)
    count = effective.get("num_outputs", 1) if fixture.output == "list" else 1
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # JSON Schema counts 4.0 as an integer
    scale = c.settings.time_scale
    return Prediction(
        id=ids.prediction_id(key, occurrence),
        owner=owner,
        model=fixture.ref,
        input=inp,
        created_at=c.clock.now(),
        setup_s=fixture.setup_s * scale,
        predict_s=fixture.predict_s * scale,
        width=width,
        height=height,
        fmt=fmt if fmt in _IMAGE_FORMATS else "webp",
        quality=quality if isinstance(quality, int) and 0 <= quality <= 100 else 80,
        outputs=count if isinstance(count, int) and count > 0 else 1,
    )


async def _own(request: Request, c: AppContext, owner: str) -> Prediction:
    prediction_id = request.path_params["prediction_id"]
    p = await c.store.get(prediction_id) if ids.is_valid(prediction_id) else None
    if p is None or p.owner != owner:
        raise NotFound()
    return p


async def _show(request: Request, c: AppContext, p: Prediction) -> bytes:
    return await _body(c, p, c.public_base(request), api_prefix(request.scope["path"]))


async def _body(c: AppContext, p: Prediction, base: str, prefix: str) -> bytes:
    """The prediction as JSON, as a GET shows it now, kept once encoded. A finished one never
    changes (only the clock set back or retention change its state, and both are in the key);
    a running one changes only with its status and the log lines its progress shows."""
    state = c.state(p)
    fixture = c.models[p.model]
    key: tuple[object, ...] | None = None
    if not state.status.terminal:
        shown = -1  # starting: no logs yet
        if state.started_at is not None:
            steps = step_count(p, fixture.log_style)
            shown = min(steps, int(state.progress * steps))
        key = (p.id, base, prefix, state.status, state.started_at, shown)
    elif c.settings.output_urls == "http":
        key = (p.id, base, prefix, state.status, state.completed_at, state.data_removed)
    if key is not None:
        body = c.rendered.get(key)
        if body is not None:
            return body
    files = await inline_outputs(c, p, state)  # None unless --output-urls data
    body = orjson.dumps(prediction_json(p, state, fixture, base=base, prefix=prefix, files=files))
    if key is not None:
        c.rendered.put(key, body)
    return body


async def get_prediction(request: Request, call: Call) -> Response:
    c = call.ctx
    p = await _own(request, c, call.owner)
    if c.timeline.read(p):
        await c.store.save(p)
        await c.webhooks.changed(p)  # the polls clock moved it
    if c.stall.active:  # a client polling a manual clock nobody moves is told so
        c.stall.read(p.id, running=not c.state(p).status.terminal)
    return JSONBytes(await _show(request, c, p))


async def cancel_prediction(request: Request, call: Call) -> Response:
    """A running prediction becomes `canceled`; a finished one comes back unchanged."""
    c = call.ctx
    p = await _own(request, c, call.owner)
    if not c.state(p).status.terminal:
        p.canceled_at = c.timeline.now_for(p)
        await c.store.save(p)
        await c.webhooks.changed(p)  # `completed` goes now
    return JSONBytes(await _show(request, c, p))


_WINDOW = ("created_after", "created_before")


def _parse_window(request: Request) -> dict[str, datetime]:
    """`created_after` (inclusive) and `created_before` (exclusive), as instants."""
    window: dict[str, datetime] = {}
    for name in _WINDOW:
        text = request.query_params.get(name)
        if text is not None:
            try:
                window[name] = rfc3339.parse(text)
            except ValueError:
                raise BadRequest(
                    f"Invalid query parameter `{name}`: {text[:100]!r}. Use an RFC 3339 "
                    "date-time such as 2025-01-01T00:00:00Z."
                ) from None
    return window


async def list_predictions(request: Request, call: Call) -> Response:
    """The caller's predictions, newest first, 100 a page, with absolute next/previous URLs
    that keep the time window."""
    c, owner = call.ctx, call.owner
    cursor = request.query_params.get("cursor")
    before, after = parse_cursor(cursor) if cursor else (None, None)
    window = _parse_window(request)
    page = await c.store.page(
        owner,
        before=before,
        after=after,
        limit=PAGE_SIZE,
        created_after=window.get("created_after"),
        created_before=window.get("created_before"),
    )
    prefix, base = api_prefix(request.scope["path"]), c.public_base(request)
    here = f"{base}{prefix}/predictions"
    kept = [(name, request.query_params[name]) for name in _WINDOW if name in window]

    def link(position: str) -> str:
        return f"{here}?{urlencode([('cursor', position), *kept], safe=':')}"

    return json_response(
        {
            "next": link(f"b{page.next_before}") if page.next_before else None,
            "previous": link(f"a{page.previous_after}") if page.previous_after else None,
            "results": [orjson.Fragment(await _body(c, p, base, prefix)) for p in page.results],
        }
    )
