"""Output files, the prediction page behind `urls.web`, and the spec itself (no token needed)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from mock_server import images
from mock_server.context import Call
from mock_server.errors import NotFound
from mock_server.models import Status

_FILENAME = re.compile(r"^out-(0|[1-9][0-9]{0,2})\.(webp|jpg|png)$")


async def get_output_file(request: Request, call: Call) -> Response:
    """The rendered image; served with or without Authorization, as real delivery URLs are."""
    c = call.ctx
    match = _FILENAME.match(request.path_params["filename"])
    p = c.store.get(request.path_params["prediction_id"])
    if match is None or p is None:
        raise NotFound()
    index, ext = int(match.group(1)), match.group(2)
    if ext != p.fmt or index >= p.outputs or c.state(p).status is not Status.SUCCEEDED:
        raise NotFound()
    prompt = str(p.input.get("prompt", ""))
    lines = images.prediction_lines(prompt, p.model, p.width, p.height, index)
    data = await c.images.get(
        f"{p.id}/{index}",
        lambda: images.render(
            p.width, p.height, p.fmt, p.quality, lines=lines, seed=f"{p.id}/{index}"
        ),
    )
    return Response(
        data,
        media_type=images.MEDIA_TYPES[ext],
        headers={"Cache-Control": "public, max-age=3600, immutable"},
    )


async def get_openapi_yaml(request: Request, call: Call) -> Response:
    return Response(call.ctx.spec.yaml_bytes, media_type="application/yaml")


async def get_openapi_json(request: Request, call: Call) -> Response:
    return Response(call.ctx.spec.json_bytes, media_type="application/json")
