"""multipart/form-data bodies (the Files API's upload), read within limits into named parts.

python-multipart's streaming parser (the one Starlette's form parser uses) feeds parts held in
memory, never in temporary files; each limit is checked while the body streams in. Every
malformed body is a 4xx that says what is wrong, never a 500. A body refused as too large is
read to its end first (up to DRAIN_BYTES), so a client still sending it reads the 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import python_multipart
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from mock_server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MEDIA_TYPE = "multipart/form-data"
MAX_PARTS = 64  # the clients send two to four; unknown fields are ignored
MAX_FIELD_BYTES = 1024 * 1024  # any part but the file: filename, type, metadata
FORM_OVERHEAD = 2 * MAX_FIELD_BYTES  # what the body may hold besides the file
DRAIN_BYTES = 64 * 1024 * 1024


@dataclass
class Part:
    name: str
    filename: str | None  # from Content-Disposition; a file part has one
    content_type: str | None  # the part's own Content-Type header
    data: bytearray = field(default_factory=bytearray)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Reader:
    """python-multipart callbacks collecting parts; the first part of a name wins."""

    def __init__(self, file_field: str, max_file_bytes: int) -> None:
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.parts: dict[str, Part] = {}
        self.count = 0
        self.ended = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = b""
        self._value = b""
        self._part: Part | None = None

    def on_part_begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise BadRequest(f"The form has more than {MAX_PARTS} parts.")
        self._headers = []

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers.append((self._name.strip().lower(), self._value.strip()))
        self._name, self._value = b"", b""

    def on_headers_finished(self) -> None:
        headers = dict(self._headers)
        _, options = parse_options_header(headers.get(b"content-disposition"))
        if b"name" not in options:
            raise BadRequest(
                'A form part has no name (Content-Disposition: form-data; name="...").'
            )
        filename = options.get(b"filename")
        ctype = headers.get(b"content-type")
        self._part = Part(
            name=options[b"name"].decode("utf-8", errors="replace"),
            filename=filename.decode("utf-8", errors="replace") if filename is not None else None,
            content_type=ctype.decode("latin-1") if ctype else None,
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part is None:
            return
        part.data += data[start:end]
        if part.name == self.file_field:
            if len(part.data) > self.max_file_bytes:
                raise PayloadTooLarge(
                    f"The file is larger than {self.max_file_bytes} bytes, the most this server "
                    "accepts (--max-file-bytes)."
                )
        elif len(part.data) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"The form field `{part.name}` is larger than {MAX_FIELD_BYTES} bytes."
            )

    def on_part_end(self) -> None:
        if self._part is not None:
            self.parts.setdefault(self._part.name, self._part)
        self._part = None

    def on_end(self) -> None:
        self.ended = True


async def read_form(request: Request, *, file_field: str, max_file_bytes: int) -> dict[str, Part]:
    """The body's parts by name: 415 for another Content-Type, 413 past a limit, 400 for a body
    that is not valid multipart/form-data."""
    ctype = request.headers.get("content-type", "")
    media, options = parse_options_header(ctype)
    if media.decode("latin-1").lower() != MEDIA_TYPE:
        shown = media.decode("latin-1") or "none"
        raise UnsupportedMediaType(f"Content-Type must be {MEDIA_TYPE}, not {shown}")
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest(f"The {MEDIA_TYPE} Content-Type has no boundary parameter.")
    limit = max_file_bytes + FORM_OVERHEAD
    stream = request.stream()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_BYTES:
            await _drain(stream, 0)
        raise _too_large(limit)
    reader = _Reader(file_field, max_file_bytes)
    callbacks = {name: getattr(reader, name) for name in _CALLBACKS}
    try:
        parser = python_multipart.MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    except (FormParserError, ValueError) as exc:
        raise BadRequest(f"The {MEDIA_TYPE} boundary is not valid: {exc}") from None
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except PayloadTooLarge:
        await _drain(stream, size)
        raise
    except FormParserError as exc:
        raise BadRequest(f"The request body is not valid {MEDIA_TYPE}: {exc}") from None
    if not reader.ended:
        raise BadRequest(f"The {MEDIA_TYPE} body ends before its closing boundary.")
    return reader.parts


_CALLBACKS = (
    "on_part_begin",
    "on_part_data",
    "on_part_end",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_end",
)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes: files up to --max-file-bytes, plus "
        "the form's other fields."
    )


async def _drain(stream: AsyncIterator[bytes], read: int) -> None:
    """Read and drop the rest of the body (up to DRAIN_BYTES in all), so the client, still
    sending, gets to read the error instead of a reset connection."""
    if read > DRAIN_BYTES:
        return
    async for chunk in stream:
        read += len(chunk)
        if read > DRAIN_BYTES:
            return
