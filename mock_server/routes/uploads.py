"""The Files API: upload (multipart/form-data), list, get, download and delete the caller's files.

What the official clients send: Python 1.x a `content` part (filename and a guessed type) and,
with metadata, a `metadata` text field; npm a `content` part (`buffer_<ms>` or the Blob's name)
and a `metadata` part that is itself a JSON Blob; the Stainless 2.x client adds `filename` and
`type` fields. A file lives 24 hours (`expires_at`), then reads as 404.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from mock_server.context import AppContext, Call
from mock_server.errors import (
    InvalidField,
    NotFound,
    TooManyFiles,
    ValidationFailed,
)
from mock_server.forms import Part, read_form
from mock_server.paging import parse_cursor
from mock_server.responses import api_prefix, json_response
from mock_server.uploads import StoredFile, digests, file_id, files_space
from mock_server.validation import MAX_DEPTH, too_deep

PAGE_SIZE = 100
MAX_FILENAME = 255  # characters (Replicate documents 255 bytes; the spec can only say characters)
DEFAULT_TYPE = "application/octet-stream"
# A media type that can go in a Content-Type header (parameters in printable ASCII).
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?")


def timestamp(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and `Z`, as the Files API shows them."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def file_json(f: StoredFile, base: str, prefix: str) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "content_type": f.content_type,
        "size": f.size,
        "etag": f.md5,
        "checksums": {"sha256": f.sha256, "md5": f.md5},
        "metadata": f.metadata,
        "created_at": timestamp(f.created_at),
        "expires_at": timestamp(f.expires_at),
        "urls": {"get": f"{base}{prefix}/files/{f.id}"},
    }


def _show(request: Request, c: AppContext, f: StoredFile) -> dict[str, Any]:
    return file_json(f, c.public_base(request), api_prefix(request.scope["path"]))


async def own_file(c: AppContext, owner: str, fid: str) -> StoredFile | None:
    """The caller's file if it exists and has not expired (an expired one is forgotten)."""
    f = await c.files.get(owner, fid)
    if f is not None and f.expires_at <= c.clock.now():
        await c.files.delete(owner, fid)
        return None
    return f


def _space(request: Request, call: Call) -> str:
    """Whose files these are: the caller's, under the prefix the request came in on."""
    return files_space(call.owner, api_prefix(request.scope["path"]))


async def _own(request: Request, c: AppContext, owner: str) -> StoredFile:
    f = await own_file(c, owner, request.path_params["file_id"])
    if f is None:
        raise NotFound()
    return f


def _text(part: Part | None, name: str, problems: list[InvalidField]) -> str | None:
    """A form field as UTF-8 text; None when absent (or not UTF-8, a problem then)."""
    if part is None:
        return None
    try:
        return part.data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(InvalidField("invalid_utf8", name, f"{name} must be valid UTF-8"))
        return None


def _filename(parts: dict[str, Part], problems: list[InvalidField]) -> str:
    """The `filename` field, else the content part's own filename, else "file"."""
    given = _text(parts.get("filename"), "filename", problems)
    content = parts.get("content")
    name = given or (content.filename if content is not None else None) or "file"
    if len(name) > MAX_FILENAME:
        field = "filename" if given else "content"
        problems.append(
            InvalidField(
                "string_lte", field, f"String length must be less than or equal to {MAX_FILENAME}"
            )
        )
    return name


def _content_type(parts: dict[str, Part], problems: list[InvalidField]) -> str:
    """The `type` field as given, else the content part's Content-Type, else
    application/octet-stream. (A `type` that is no media type is kept and shown as given; the
    download then says application/octet-stream.)"""
    given = _text(parts.get("type"), "type", problems)
    if given:
        return given
    content = parts.get("content")
    own = content.content_type.strip() if content and content.content_type else ""
    return own if _MEDIA_TYPE.fullmatch(own) else DEFAULT_TYPE


def _metadata(parts: dict[str, Part], problems: list[InvalidField]) -> Any:
    """The `metadata` field (text, or npm's JSON Blob part): any JSON ("must be valid JSON", as
    Replicate documents it; the clients send an object), `{}` when absent."""
    text = _text(parts.get("metadata"), "metadata", problems)
    if text is None or not text.strip():
        return {}  # an empty field counts as absent
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        problems.append(InvalidField("invalid_json", "metadata", f"metadata is not JSON: {exc}"))
        return {}
    if too_deep(value, MAX_DEPTH):
        problems.append(
            InvalidField(
                "invalid", "metadata", f"metadata is nested deeper than {MAX_DEPTH} levels"
            )
        )
        return {}
    return value


async def create_file(request: Request, call: Call) -> Response:
    """201 and the file object: 415 unless multipart/form-data, 413 past --max-file-bytes, 409
    past --max-files, 422 naming each bad field (content missing, filename, type, metadata)."""
    c, owner = call.ctx, _space(request, call)
    parts = await read_form(request, file_field="content", max_file_bytes=c.settings.max_file_bytes)
    problems: list[InvalidField] = []
    content = parts.get("content")
    if content is None:
        problems.append(InvalidField("required", "content", "content is required"))
    name = _filename(parts, problems)
    content_type = _content_type(parts, problems)
    metadata = _metadata(parts, problems)
    if problems or content is None:
        raise ValidationFailed(sorted(problems, key=lambda p: p.field))
    now = c.clock.now()
    await c.files.purge(owner, now)
    if await c.files.count(owner) >= c.settings.max_files:
        raise TooManyFiles(c.settings.max_files)
    data = bytes(content.data)
    sha256, md5 = digests(data)
    key = f"{owner}:{sha256}"
    stored = await c.files.add(
        StoredFile(
            id=file_id(c.settings.seed, owner, sha256, await c.files.next_occurrence(key)),
            owner=owner,
            name=name,
            content_type=content_type,
            data=data,
            metadata=metadata,
            created_at=now,
            sha256=sha256,
            md5=md5,
        )
    )
    return json_response(_show(request, c, stored), 201)


async def get_file(request: Request, call: Call) -> Response:
    c = call.ctx
    return json_response(_show(request, c, await _own(request, c, _space(request, call))))


async def download_file(request: Request, call: Call) -> Response:
    """The bytes, with the type they were uploaded with. The signed-URL query parameters of the
    real API (`expiry`, `owner`, `signature`) are accepted and not checked: the token decides."""
    f = await _own(request, call.ctx, _space(request, call))
    return Response(
        f.data,
        media_type=f.content_type if _MEDIA_TYPE.fullmatch(f.content_type) else DEFAULT_TYPE,
        headers={
            "ETag": f'"{f.md5}"',
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(f.name, safe='')}",
        },
    )


async def delete_file(request: Request, call: Call) -> Response:
    c = call.ctx
    owner = _space(request, call)
    await c.files.delete(owner, (await _own(request, c, owner)).id)
    return Response(status_code=204)


async def list_files(request: Request, call: Call) -> Response:
    """The caller's files, newest first, 100 a page, with absolute next/previous URLs."""
    c, owner = call.ctx, _space(request, call)
    await c.files.purge(owner, c.clock.now())
    cursor = request.query_params.get("cursor")
    before, after = parse_cursor(cursor) if cursor else (None, None)
    page = await c.files.page(owner, before=before, after=after, limit=PAGE_SIZE)
    here = f"{c.public_base(request)}{api_prefix(request.scope['path'])}/files"

    def link(position: str) -> str:
        return f"{here}?{urlencode([('cursor', position)])}"

    return json_response(
        {
            "next": link(f"b{page.next_before}") if page.next_before else None,
            "previous": link(f"a{page.previous_after}") if page.previous_after else None,
            "results": [_show(request, c, f) for f in page.results],
        }
    )
