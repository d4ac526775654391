"""Model and version metadata.

The Python client's `run("owner/name:version")` reads the version after creating.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mock_server.context import Call
from mock_server.errors import NotFound
from mock_server.responses import json_response
from mock_server.views import model_json, version_json


async def get_model(request: Request, call: Call) -> Response:
    c = call.ctx
    fixture = c.model(request.path_params["model_owner"], request.path_params["model_name"])
    return json_response(model_json(fixture, c.started_at, run_count=0))


async def get_model_version(request: Request, call: Call) -> Response:
    c = call.ctx
    fixture = c.model(request.path_params["model_owner"], request.path_params["model_name"])
    if request.path_params["version_id"] != fixture.version:
        raise NotFound()
    return json_response(version_json(fixture, c.started_at))
