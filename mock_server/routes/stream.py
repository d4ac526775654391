"""`urls.stream` (Server-Sent Events) and `urls.web` (a small HTML page) for one prediction.

Neither needs a token: the npm client and browsers open them without Authorization.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from mock_server.context import AppContext, Call
from mock_server.errors import NotFound
from mock_server.models import Prediction, Status
from mock_server.views import output_urls, prediction_json

POLL_SECONDS = 0.05
MAX_STREAM_SECONDS = 1800.0  # the real API times predictions out after 30 minutes


def _find(request: Request, c: AppContext) -> tuple[AppContext, Prediction]:
    p = c.store.get(request.path_params["prediction_id"])
    if p is None:
        raise NotFound()
    return c, p


def _event(kind: str, event_id: int, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {kind}\nid: {event_id}\n{lines}\n"


async def _events(c: AppContext, p: Prediction, base: str) -> AsyncIterator[str]:
    """`logs` as lines appear, `output` per file on success, then `done` (or `error`)."""
    fixture = c.models[p.model]
    sent_logs = 0
    event_id = 0
    waited = 0.0
    while True:
        state = c.state(p)
        logs = prediction_json(p, state, fixture, base=base, prefix="/v1")["logs"]
        for line in logs.splitlines()[sent_logs:]:
            event_id += 1
            yield _event("logs", event_id, line)
        sent_logs = len(logs.splitlines())
        if state.status.terminal:
            if state.status is Status.SUCCEEDED:
                for url in output_urls(p, base):
                    event_id += 1
                    yield _event("output", event_id, url)
            event_id += 1
            reason = "" if state.status is Status.SUCCEEDED else state.status.value
            yield _event("done", event_id, f'{{"reason": "{reason}"}}' if reason else "{}")
            return
        if waited >= MAX_STREAM_SECONDS:
            event_id += 1
            yield _event("error", event_id, '{"detail": "stream timed out"}')
            return
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS


async def stream_prediction(request: Request, call: Call) -> Response:
    c, p = _find(request, call.ctx)
    return StreamingResponse(
        _events(c, p, c.public_base(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


async def get_prediction_page(request: Request, call: Call) -> Response:
    """A human view of one prediction: status, logs and images (refresh to follow it)."""
    c, p = _find(request, call.ctx)
    state = c.state(p)
    data = prediction_json(p, state, c.models[p.model], base=c.public_base(request), prefix="/v1")
    images = "".join(
        f'<img src="{html.escape(u)}" alt="output {i}" style="max-width:100%">'
        for i, u in enumerate(output_urls(p, c.public_base(request)))
        if state.status is Status.SUCCEEDED
    )
    refresh = "" if state.status.terminal else '<meta http-equiv="refresh" content="1">'
    body = (
        f"<!doctype html><html><head><meta charset=utf-8>{refresh}"
        f"<title>{html.escape(p.id)}</title></head><body style='font-family:sans-serif'>"
        f"<h1>{html.escape(p.model)}</h1><p>Status: <b>{state.status.value}</b></p>"
        f"<p>{html.escape(str(p.input.get('prompt', '')))}</p>{images}"
        f"<pre>{html.escape(data['logs'])}</pre></body></html>"
    )
    return HTMLResponse(body)
