"""The webhook signing secret (`GET /webhooks/default/secret`) and the delivery attempts
(`GET /__admin/webhooks`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mock_server.context import Call
from mock_server.errors import BadRequest
from mock_server.responses import json_response


async def get_default_secret(request: Request, call: Call) -> Response:
    """The caller's secret: stable per token and seed, as the official clients fetch it."""
    return json_response({"key": call.ctx.webhooks.secret_for(call.owner)})


async def list_webhook_attempts(request: Request, call: Call) -> Response:
    """Delivery attempts, newest first; filters `prediction_id`, `event`, `limit`."""
    q = request.query_params
    limit = q.get("limit", "1000")
    if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
        raise BadRequest("`limit` must be 1 to 10000.")
    attempts = await call.ctx.webhooks.find(
        prediction_id=q.get("prediction_id"), event=q.get("event"), limit=int(limit)
    )
    return json_response({"webhooks": [a.to_json() for a in attempts]})
