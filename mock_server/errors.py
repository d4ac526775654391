"""The API's error hierarchy and the one handler that renders it as problem+json.

APIError                    (any status; title, detail)
├── BadRequest              400  malformed JSON, a body that is not an object, a bad cursor
├── Unauthenticated         401  missing or unknown bearer token
├── NotFound                404  unknown model, version, prediction or file
├── MethodNotAllowed        405  carries the `Allow` header
├── ClockStalled            409  a client waits on a manual clock nobody moves (stall timeout)
├── TooManyFiles            409  an upload past --max-files for the token
├── PayloadTooLarge         413  body over --max-body-bytes (an upload: over --max-file-bytes)
├── UnsupportedMediaType    415  a body that is not application/json (an upload: multipart)
├── InvalidVersion          422  create-by-version with an unknown version
├── ValidationFailed        422  input (or body) fails its schema; carries invalid_fields
├── InternalError           500  anything unexpected (no traceback in the body)
└── StoreUnavailable        503  the shared store (Redis) does not answer; carries Retry-After
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

log = logging.getLogger("mock_server")
PROBLEM_JSON = "application/problem+json"


class APIError(Exception):
    status_code = 500
    title = "Internal Server Error"
    default_detail = "An unexpected error occurred."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"title": self.title, "detail": self.detail, "status": self.status_code}


class BadRequest(APIError):
    status_code = 400
    title = "Bad request"
    default_detail = "The request could not be understood."


class Unauthenticated(APIError):
    status_code = 401
    title = "Unauthenticated"
    default_detail = "You did not pass an authentication token"


class NotFound(APIError):
    status_code = 404
    title = "Not found"
    default_detail = "The requested resource could not be found."


class MethodNotAllowed(APIError):
    status_code = 405
    title = "Method not allowed"
    default_detail = "The method is not allowed for the requested URL."


class ClockStalled(APIError):
    status_code = 409
    title = "Manual clock not moving"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"This request waits on the mock server's manual clock, which has not moved for "
            f"{seconds:g} s, so it would wait forever. Move the clock "
            "(mock_server.advance(seconds) in the pytest plugin, or POST /__admin/clock), or use "
            'the default clock (drop clock="manual" from the mock_server marker).'
        )


class TooManyFiles(APIError):
    """Not 429: waiting does not help (only deleting files, or their expiry, does), and the
    clients retry a 429 at once (npm) or not at all for a POST (Python)."""

    status_code = 409
    title = "Too many files"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"This token already has {limit} files, the most this server keeps per token "
            "(--max-files). Delete some (DELETE /v1/files/{file_id}) or wait for them to expire."
        )


class PayloadTooLarge(APIError):
    status_code = 413
    title = "Request body too large"
    default_detail = "The request body is larger than the server accepts."


class UnsupportedMediaType(APIError):
    status_code = 415
    title = "Unsupported media type"
    default_detail = "Content-Type must be application/json"


class InvalidVersion(APIError):
    status_code = 422
    title = "Invalid version or not permitted"
    default_detail = (
        "The specified version does not exist (or perhaps you don't have permission to use it?)"
    )


@dataclass(frozen=True)
class InvalidField:
    type: str
    field: str
    description: str


class ValidationFailed(APIError):
    status_code = 422
    title = "Input validation failed"

    def __init__(self, problems: list[InvalidField]) -> None:
        self.invalid_fields = problems
        detail = "".join(f"- {p.field or '(root)'}: {p.description}\n" for p in problems)
        super().__init__(detail)

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["invalid_fields"] = [
            {"type": p.type, "field": p.field, "description": p.description}
            for p in self.invalid_fields
        ]
        return body


class InternalError(APIError):
    pass


class ClientClosed(APIError):
    """The client went away while sending its request (nginx's 499): nobody reads the answer,
    but the journal records it, and it is no server error."""

    status_code = 499
    title = "Client closed request"


class StoreUnavailable(APIError):
    """The shared store did not answer in time, or refused the connection: nothing was half
    written (each change is one transaction), and the client may retry."""

    status_code = 503
    title = "Service Unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class ForcedError(APIError):
    """An HTTP error a scenario asked for: its own status, body and headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.status_code = status
        self._body = body
        super().__init__(str(body.get("detail", "")), headers=headers)

    def body(self) -> dict[str, Any]:
        return self._body


def problem_response(error: APIError) -> Response:
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status_code,
        headers=error.headers,
        media_type=PROBLEM_JSON,
    )


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthenticated,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def allowed_methods(request: Request) -> str:
    """Every method any route serves at this path (one path may have one route per method)."""
    path = request.scope["path"]
    table: list[tuple[re.Pattern[str], set[str]]] = request.app.state.allow_table
    methods = {m for regex, served in table if regex.match(path) for m in served}
    return ", ".join(sorted(methods))


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """The one handler: APIError, Starlette's HTTPException (404/405 from routing) and the rest."""
    if isinstance(exc, APIError):
        return problem_response(exc)
    if isinstance(exc, ClientDisconnect):
        return problem_response(ClientClosed("The client closed the connection."))
    if isinstance(exc, HTTPException):
        cls = _BY_STATUS.get(exc.status_code)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        error = cls(headers=headers) if cls else APIError(str(exc.detail))
        if cls is None:
            error.status_code = exc.status_code
        return problem_response(error)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(InternalError())
