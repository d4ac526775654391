"""The demo page at `/`: a browser UI for this server (run a model, watch its stream, keep a
gallery, show every call as curl), served from the package's `static/` folder.

Plain HTML, CSS and one script: no build step, no external assets, so it works offline and from
an installed wheel. No token is needed to load it; the page sends the one entered in it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from mock_server.context import Call
from mock_server.errors import NotFound

PAGE = "index.html"
# The files under /static/ and their media types (Starlette adds `; charset=utf-8` to text/*).
ASSETS = {"demo.css": "text/css", "demo.js": "text/javascript"}
# Revalidate on each load (a new version of the package shows at once), and never sniff.
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@cache
def read_static(name: str) -> bytes:
    """A file of mock_server/static, read once (from the source tree or the installed wheel)."""
    return (files("mock_server") / "static" / name).read_bytes()


async def get_demo_page(request: Request, call: Call) -> Response:
    return Response(read_static(PAGE), media_type="text/html", headers=HEADERS)


async def get_demo_asset(request: Request, call: Call) -> Response:
    name = request.path_params["asset"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound()
    return Response(read_static(name), media_type=media_type, headers=HEADERS)
