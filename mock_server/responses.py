"""Response helpers shared by the handlers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

COMET_PREFIX = "/replicate/v1"
REPLICATE_PREFIX = "/v1"
PREFIXES = (COMET_PREFIX, REPLICATE_PREFIX)


_JSON = (b"content-type", b"application/json")


class JSONBytes(Response):
    """A JSON body already encoded, with its headers built directly (Starlette's general
    header handling is a tenth of a hot request's cost)."""

    media_type = "application/json"

    def __init__(
        self, body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        raw = [(b"content-length", b"%d" % len(body)), _JSON]
        if headers:
            raw.extend(
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            )
        self.raw_headers = raw


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONBytes(orjson.dumps(data), status_code, headers)


def api_prefix(path: str) -> str:
    """The prefix this request came in on: CometAPI's `/replicate/v1` or Replicate's `/v1`."""
    return COMET_PREFIX if path.startswith(COMET_PREFIX + "/") else REPLICATE_PREFIX


def created_status(prefix: str) -> int:
    """CometAPI's document says create answers 200; Replicate answers 201."""
    return 200 if prefix == COMET_PREFIX else 201
