"""`urls.stream` (Server-Sent Events) and `urls.web` (a small HTML page) for one prediction.

Neither needs a token: the npm client and browsers open them without Authorization. A stream
ends as the real API's do (`done`, or `error` then `done` with a reason), and every event has a
fixed `id:`, so a client reconnecting with `Last-Event-ID` resumes where it left off.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from mock_server.context import AppContext, Call
from mock_server.errors import NotFound
from mock_server.lifecycle import State
from mock_server.logs import logs_at
from mock_server.models import Prediction, Status
from mock_server.outputs import inline_outputs
from mock_server.views import output_urls, prediction_json

POLL_SECONDS = 0.05
MAX_STREAM_SECONDS = 1800.0  # the real API times predictions out after 30 minutes


async def _find(request: Request, c: AppContext) -> tuple[AppContext, Prediction]:
    p = await c.store.get(request.path_params["prediction_id"])
    if p is None:
        raise NotFound()
    return c, p


def _event(kind: str, event_id: int, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {kind}\nid: {event_id}\n{lines}\n"


def _detail(message: str) -> str:
    return json.dumps({"detail": message})


CANCELED = "Prediction was canceled"
ABORTED = "Prediction was aborted: its Cancel-After deadline passed before it started"
_REASON_ERROR = '{"reason": "error"}'


async def _ending(c: AppContext, p: Prediction, state: State, base: str) -> list[tuple[str, str]]:
    """The events after the last log line, as the real API ends a stream: each output then
    `done {}`; or `error {"detail": ...}` then `done {"reason": "error" | "canceled"}`."""
    if state.status is Status.SUCCEEDED:
        files = await inline_outputs(c, p, state) or output_urls(p, base)
        return [*(("output", f) for f in files), ("done", "{}")]
    if state.status is Status.FAILED:
        return [("error", _detail(p.error or "Prediction failed")), ("done", _REASON_ERROR)]
    detail = ABORTED if state.status is Status.ABORTED else CANCELED
    return [("error", _detail(detail)), ("done", '{"reason": "canceled"}')]


def last_event_id(request: Request) -> int:
    """The `Last-Event-ID` a reconnecting client sends: events up to it are skipped. Anything
    but a plain event number replays from the start."""
    raw = request.headers.get("last-event-id", "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 9 else 0


async def _events(c: AppContext, p: Prediction, base: str, after: int) -> AsyncIterator[str]:
    """Every event has a fixed number in the prediction's one sequence (log lines 1..L, then the
    ending), the same on every connection, so a reconnect with `Last-Event-ID: N` resumes at N+1.
    """
    fixture = c.models[p.model]
    numbered = 0  # log lines numbered so far: logs only ever grow
    waited = 0.0
    while True:
        if c.shared is not None:  # another process may cancel it
            p = await c.store.get(p.id) or p
        state = c.state(p)
        lines = logs_at(p, state, fixture.log_style).splitlines()
        for n, line in enumerate(lines[numbered:], start=numbered + 1):
            if n > after:
                yield _event("logs", n, line)
        numbered = max(numbered, len(lines))
        if state.status.terminal:
            ending = await _ending(c, p, state, base)
            for n, (kind, data) in enumerate(ending, start=numbered + 1):
                if n > after:
                    yield _event(kind, n, data)
            return
        if waited >= MAX_STREAM_SECONDS:
            yield _event("error", numbered + 1, _detail("stream timed out"))
            yield _event("done", numbered + 2, _REASON_ERROR)
            return
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS


async def stream_prediction(request: Request, call: Call) -> Response:
    c, p = await _find(request, call.ctx)
    return StreamingResponse(
        _events(c, p, c.public_base(request), last_event_id(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


async def get_prediction_page(request: Request, call: Call) -> Response:
    """A human view of one prediction: status, logs and images (refresh to follow it)."""
    c, p = await _find(request, call.ctx)
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
