"""Model and version metadata, and the rest of the catalogue the clients read: account, models,
versions, hardware and collections.

The Python client's `run("owner/name:version")` reads the version after creating.
"""

from __future__ import annotations

import hashlib
from typing import Any

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


# The rest of what the official clients call, in the real API's shapes.
HARDWARE = [
    {"name": "CPU", "sku": "cpu"},
    {"name": "Nvidia T4 GPU", "sku": "gpu-t4"},
    {"name": "Nvidia L40S GPU", "sku": "gpu-l40s"},
    {"name": "2x Nvidia L40S GPU", "sku": "gpu-l40s-2x"},
    {"name": "Nvidia A100 (80GB) GPU", "sku": "gpu-a100-large"},
    {"name": "Nvidia H100 GPU", "sku": "gpu-h100"},
]
FLUX = {
    "name": "FLUX",
    "slug": "flux",
    "description": "The FLUX image models of Black Forest Labs that this server emulates.",
}


def _page(results: list[Any]) -> dict[str, Any]:
    return {"next": None, "previous": None, "results": results}


async def get_account(request: Request, call: Call) -> Response:
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    username = "mock-" + hashlib.sha256(token.encode()).hexdigest()[:12]
    return json_response(
        {"type": "user", "username": username, "name": "Mock User", "github_url": None}
    )


def _models(call: Call) -> list[dict[str, Any]]:
    c = call.ctx
    return [model_json(f, c.started_at, run_count=0) for _, f in sorted(c.models.items())]


async def list_models(request: Request, call: Call) -> Response:
    return json_response(_page(_models(call)))


async def list_model_versions(request: Request, call: Call) -> Response:
    c = call.ctx
    fixture = c.model(request.path_params["model_owner"], request.path_params["model_name"])
    return json_response(_page([version_json(fixture, c.started_at)]))


async def list_hardware(request: Request, call: Call) -> Response:
    return json_response(HARDWARE)


async def list_collections(request: Request, call: Call) -> Response:
    return json_response(_page([FLUX]))


async def get_collection(request: Request, call: Call) -> Response:
    if request.path_params["collection_slug"] != FLUX["slug"]:
        raise NotFound()
    return json_response({**FLUX, "models": _models(call)})
