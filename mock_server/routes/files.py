"""Output files, the prediction page behind `urls.web`, and the spec itself (no token needed)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from mock_server import images
from mock_server.context import Call
from mock_server.errors import NotFound
from mock_server.models import Status
from mock_server.outputs import output_file

_FILENAME = re.compile(r"^out-(0|[1-9][0-9]{0,2})\.(webp|jpg|png)$")
CACHE_CONTROL = "public, max-age=3600, immutable"


async def get_output_file(request: Request, call: Call) -> Response:
    """The rendered image; served with or without Authorization, as real delivery URLs are."""
    c = call.ctx
    match = _FILENAME.match(request.path_params["filename"])
    p = await c.store.get(request.path_params["prediction_id"])
    if match is None or p is None:
        raise NotFound()
    index, ext = int(match.group(1)), match.group(2)
    state = c.state(p)
    if ext != p.fmt or index >= p.outputs or state.status is not Status.SUCCEEDED:
        raise NotFound()
    if state.data_removed:  # --retention: the file is gone, as on replicate.delivery
        raise NotFound()
    data = await output_file(c, p, index)
    return Response(
        data,
        media_type=images.MEDIA_TYPES[ext],
        headers={"Cache-Control": CACHE_CONTROL},
    )


async def get_openapi_yaml(request: Request, call: Call) -> Response:
    return Response(call.ctx.spec.yaml_bytes, media_type="application/yaml")


async def get_openapi_json(request: Request, call: Call) -> Response:
    return Response(call.ctx.spec.json_bytes, media_type="application/json")
