"""The admin API under /__admin: health, reset, clock, request journal, scenarios, and
predictions across all tokens (force one to succeed, fail or cancel now)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mock_server import __version__ as version
from mock_server.auth import owner_of
from mock_server.clock import ManualClock
from mock_server.config import MAX_TIME_SCALE
from mock_server.context import AppContext, Call
from mock_server.errors import APIError, BadRequest, InvalidField, NotFound, ValidationFailed
from mock_server.models import Prediction, Status
from mock_server.responses import json_response
from mock_server.scenarios import ScenarioError, parse
from mock_server.timeline import ClockMode
from mock_server.validation import read_json_object
from mock_server.views import prediction_json, timestamp

MAX_ADVANCE = 1e9  # seconds (about 31 years) in one move
MIN_YEAR, MAX_YEAR = 1970, 3000  # RFC 3339 needs four-digit years; datetime ends at 9999


class ClockNotManual(APIError):
    status_code = 409
    title = "Clock is not manual"
    default_detail = "Only a manual clock can be moved: start with --clock manual or reset with it."


def _clock_json(c: AppContext) -> dict[str, Any]:
    return {"mode": c.timeline.mode.value, "now": timestamp(c.clock.now())}


async def health(request: Request, call: Call) -> Response:
    c = call.ctx
    return json_response(
        {
            "status": "ok",
            "version": version,
            "predictions": await c.store.count(),
            "store": c.store.kind,
            "clock": _clock_json(c),
            "seed": c.settings.seed,
            "time_scale": c.settings.time_scale,
            "output_urls": c.settings.output_urls,
        }
    )


async def reset(request: Request, call: Call) -> Response:
    """Empty the store, journal and run-time scenarios; optionally set seed, clock, time_scale."""
    c = call.ctx
    body = await read_json_object(request, c.settings.max_body_bytes, optional=True)
    unknown = sorted(set(body) - {"seed", "clock", "time_scale", "token"})
    if unknown:
        raise BadRequest(f"Unknown reset option: {', '.join(unknown)}.")
    if "token" in body:
        token = body["token"]
        if not isinstance(token, str) or not token.strip() or " " in token.strip():
            raise BadRequest("`token` must be an API token (the one whose state to forget).")
        if len(body) > 1:
            raise BadRequest("`token` resets one caller: it cannot change seed, clock or scale.")
        await c.reset_owner(owner_of(token.strip()))
        return json_response({"status": "reset", "clock": _clock_json(c), "seed": c.settings.seed})
    changes: dict[str, object] = {}
    if "seed" in body:
        seed = body["seed"]
        if isinstance(seed, float) and seed.is_integer():
            seed = int(seed)  # JSON Schema's integer: 901.0 is one
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise BadRequest("`seed` must be an integer from 0 to 2**63-1.")
        changes["seed"] = seed
    if "clock" in body:
        if body["clock"] not in [m.value for m in ClockMode]:
            raise BadRequest("`clock` must be one of time, polls, manual.")
        changes["clock"] = body["clock"]
    if "time_scale" in body:
        scale = body["time_scale"]
        if not isinstance(scale, int | float) or isinstance(scale, bool):
            raise BadRequest("`time_scale` must be a number.")
        if not 0 <= scale <= MAX_TIME_SCALE:
            raise BadRequest(f"`time_scale` must be 0 to {MAX_TIME_SCALE:g}.")
        changes["time_scale"] = float(scale)
    await c.reset(**changes)
    return json_response({"status": "reset", "clock": _clock_json(c), "seed": c.settings.seed})


async def get_clock(request: Request, call: Call) -> Response:
    return json_response(_clock_json(call.ctx))


async def move_clock(request: Request, call: Call) -> Response:
    """`{"advance": seconds}` or `{"set": "<RFC 3339>"}` on a manual clock; 409 otherwise."""
    c = call.ctx
    body = await read_json_object(request, c.settings.max_body_bytes)
    if not isinstance(c.clock, ManualClock):
        raise ClockNotManual()
    if set(body) == {"advance"}:
        seconds = body["advance"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise BadRequest("`advance` must be a number of seconds.")
        if not 0 <= seconds <= MAX_ADVANCE or c.clock.now().year + seconds / 3.2e7 > MAX_YEAR:
            raise BadRequest(
                f"`advance` must be 0 to {MAX_ADVANCE:g} s, staying before {MAX_YEAR}."
            )
        await c.move_clock(advance=float(seconds))
    elif set(body) == {"set"}:
        try:
            when = datetime.fromisoformat(str(body["set"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest("`set` must be an RFC 3339 timestamp.") from None
        if when.tzinfo is None:
            raise BadRequest("`set` must include a time zone (e.g. Z).")
        when = when.astimezone(UTC)  # the clock reads UTC
        if not MIN_YEAR <= when.year < MAX_YEAR:
            raise BadRequest(f"`set` must be between {MIN_YEAR} and {MAX_YEAR - 1}.")
        await c.move_clock(to=when)
    else:
        raise BadRequest('Send {"advance": seconds} or {"set": "2024-01-01T00:00:00Z"}.')
    return json_response(_clock_json(c))


async def list_requests(request: Request, call: Call) -> Response:
    q = request.query_params
    status = q.get("status")
    if status is not None and not status.isdigit():
        raise BadRequest("`status` must be an HTTP status code.")
    limit = q.get("limit", "1000")
    if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
        raise BadRequest("`limit` must be 1 to 10000.")
    entries = await call.ctx.journal.find(
        method=q.get("method"),
        path=q.get("path"),
        model=q.get("model"),
        status=int(status) if status is not None else None,
        limit=int(limit),
    )
    return json_response({"requests": [e.to_json() for e in entries]})


async def clear_requests(request: Request, call: Call) -> Response:
    await call.ctx.journal.clear()
    return Response(status_code=204)


async def list_scenarios(request: Request, call: Call) -> Response:
    await call.ctx.sync(fresh=True)  # `times` left, as every process has spent them
    rules = call.ctx.scenarios.rules.values()
    return json_response({"scenarios": [r.to_json() for r in rules]})


async def add_scenario(request: Request, call: Call) -> Response:
    c = call.ctx
    body = await read_json_object(request, c.settings.max_body_bytes)
    try:
        scenario = parse(body, c.scenarios.schema)
    except ScenarioError as exc:
        field, _, message = str(exc).removeprefix("scenario: ").partition(": ")
        raise ValidationFailed([InvalidField("invalid", field, message)]) from None
    await c.add_scenario(scenario)
    return json_response(scenario.to_json(), 201)


async def remove_scenario(request: Request, call: Call) -> Response:
    if not await call.ctx.remove_scenario(request.path_params["name"]):
        raise NotFound()
    return Response(status_code=204)


def _admin_view(request: Request, c: AppContext, p: Prediction) -> dict[str, Any]:
    data = prediction_json(
        p, c.state(p), c.models[p.model], base=c.public_base(request), prefix="/v1"
    )
    return {"owner": p.owner, "prediction": data}


async def list_all_predictions(request: Request, call: Call) -> Response:
    c = call.ctx
    page = await c.store.page(None, limit=1000)
    return json_response({"predictions": [_admin_view(request, c, p) for p in page.results]})


async def _find(request: Request, c: AppContext) -> Prediction:
    p = await c.store.get(request.path_params["prediction_id"])
    if p is None:
        raise NotFound()
    return p


async def force_prediction(request: Request, call: Call) -> Response:
    """Finish a running prediction now: `succeed`, `fail` (optional `error`) or `cancel`."""
    c = call.ctx
    p = await _find(request, c)
    action = request.path_params["action"]
    if action not in ("succeed", "fail", "cancel"):
        raise NotFound()
    body = await read_json_object(request, c.settings.max_body_bytes, optional=True)
    if set(body) - {"error"}:
        raise BadRequest(f"Unknown field: {', '.join(sorted(set(body) - {'error'}))}.")
    error = body.get("error", "Prediction failed (forced by the admin API)")
    if not isinstance(error, str):
        raise BadRequest("`error` must be a string.")  # before anything changes
    if not c.state(p).status.terminal:
        now = c.timeline.now_for(p)
        if action == "cancel":
            p.canceled_at = now
        else:
            p.ends_at = now
            p.outcome = Status.SUCCEEDED if action == "succeed" else Status.FAILED
            if action == "fail":
                p.error = error
        await c.store.save(p)
        await c.webhooks.changed(p)  # `completed` goes now
    return json_response(_admin_view(request, c, p))
