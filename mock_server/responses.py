"""Response helpers shared by the handlers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

COMET_PREFIX = "/replicate/v1"
REPLICATE_PREFIX = "/v1"
PREFIXES = (COMET_PREFIX, REPLICATE_PREFIX)


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json"
    )


def api_prefix(path: str) -> str:
    """The prefix this request came in on: CometAPI's `/replicate/v1` or Replicate's `/v1`."""
    return COMET_PREFIX if path.startswith(COMET_PREFIX + "/") else REPLICATE_PREFIX


def created_status(prefix: str) -> int:
    """CometAPI's document says create answers 200; Replicate answers 201."""
    return 200 if prefix == COMET_PREFIX else 201
