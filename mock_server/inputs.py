"""Input images: find a prediction's image inputs and measure them, so sizes follow the image.

Where an image input can point, and what is known of it:
- a `data:` URI: decoded and measured;
- a file uploaded to this server (its `urls.get` URL, as the official clients pass it, or its
  `/download` URL): measured;
- an output of this server (`/delivery/<id>/out-N.<fmt>`): the prediction's width and height,
  nothing rendered;
- any other http(s) URL: unknown, as the server is offline by design (the model's fallback
  applies: 1:1 for match_input_image), unless --fetch-inputs, which downloads it (at most
  --max-file-bytes, within --fetch-timeout) and measures it.
An input known not to load (a file or output of this server that is not there, bytes that are no
image, a failed download) fails the prediction, as the real model fails on an input it cannot
read. The create still succeeds. Measuring reads the header only (Image.open(...).size).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote_to_bytes, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError
from starlette.requests import Request

from mock_server import __version__
from mock_server.context import AppContext
from mock_server.fixtures import ModelFixture
from mock_server.models import Prediction, Status
from mock_server.sizes import first_image
from mock_server.uploads import files_space

Size = tuple[int, int]
Outcome = tuple[Size | None, str | None]  # (size, or None when unknown; why it cannot load)
UNKNOWN: Outcome = (None, None)
HEADER_BYTES = 64 * 1024  # enough for the size in any header Pillow reads (JPEG's EXIF first)
_FILE = re.compile(r"(?P<prefix>/replicate/v1|/v1)/files/(?P<id>[^/]+?)(?:/download)?/?$")
_OUTPUT = re.compile(r"/delivery/(?P<id>[0-9a-z]{26})/out-(?P<index>\d{1,3})\.(?P<ext>\w+)$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
SHOWN_CHARS = 200


@dataclass(frozen=True)
class InputImages:
    """The measured image inputs of one create, and why the prediction fails, if it does."""

    sizes: dict[str, Size] = field(default_factory=dict)
    error: str | None = None

    def measure(self, value: object) -> Size | None:
        """An input's image size (the first item of a list), for sizes.output_size."""
        image = first_image(value)
        return self.sizes.get(image) if isinstance(image, str) else None

    def apply(self, p: Prediction) -> None:
        """An input that cannot load fails the prediction when it would start running."""
        if self.error is not None:
            p.outcome = Status.FAILED
            p.error = self.error
            p.predict_s = 0.0


def image_inputs(fixture: ModelFixture, inp: dict[str, Any]) -> list[str]:
    """The values of the inputs the schema types as URIs (strings, or lists of them), in order."""
    found: list[str] = []
    for name, many in fixture.uri_inputs:
        value = inp.get(name)
        if not many and isinstance(value, str):
            found.append(value)
        elif many and isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str))
    return list(dict.fromkeys(found))


async def resolve(
    c: AppContext, request: Request, owner: str, fixture: ModelFixture, inp: dict[str, Any]
) -> InputImages:
    """Measure every image input of `inp` (remote ones concurrently, with --fetch-inputs)."""
    values = image_inputs(fixture, inp)
    if not values:
        return InputImages()
    outcomes = await asyncio.gather(*(_measure(c, request, owner, v) for v in values))
    sizes = {v: size for v, (size, _) in zip(values, outcomes, strict=True) if size is not None}
    error = next((why for _, why in outcomes if why is not None), None)
    return InputImages(sizes, error)


async def _measure(c: AppContext, request: Request, owner: str, value: str) -> Outcome:
    if value.startswith("data:"):
        return _data_uri(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return UNKNOWN
    local = await _local(c, request, owner, value, parts)
    if local is not None:
        return local
    if c.settings.fetch_inputs:
        return await _fetch(value, c.settings.max_file_bytes, c.settings.fetch_timeout)
    return UNKNOWN


def shown(value: str) -> str:
    """An input as error messages name it: a data: URI by its media type only."""
    if value.startswith("data:"):
        return value.split(",", 1)[0][:SHOWN_CHARS] + ",..."
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "..."


def _unreadable(value: str, reason: str) -> Outcome:
    return None, f"Failed to read input image {shown(value)}: {reason}"


def _not_downloaded(value: str, reason: str) -> Outcome:
    return None, f"Failed to download input image {shown(value)}: {reason}"


def _size_of(data: bytes | bytearray) -> Size | str:
    """The image's width and height from its header, or why there is none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except UnidentifiedImageError:
        return "cannot identify image file"
    except Image.DecompressionBombError:
        return "the image has too many pixels"
    except Exception as exc:  # a broken header: Pillow raises many kinds
        return f"broken image file ({type(exc).__name__})"
    if width < 1 or height < 1:
        return "the image has no pixels"
    return width, height


def _bytes_outcome(value: str, data: bytes | bytearray) -> Outcome:
    size = _size_of(data)
    return _unreadable(value, size) if isinstance(size, str) else (size, None)


def _data_uri(value: str) -> Outcome:
    header, comma, payload = value.partition(",")
    if not comma:
        return _unreadable(value, "a data: URI needs a comma before its data")
    if not header.endswith(";base64"):
        return _bytes_outcome(value, unquote_to_bytes(payload))
    # The header first: a few KiB of base64 usually hold the size, so a large image is not
    # decoded whole.
    head = payload[: HEADER_BYTES // 3 * 4]
    if len(head) < len(payload):
        try:
            size = _size_of(base64.b64decode(head, validate=False))
        except (binascii.Error, ValueError):
            size = "bad base64"
        if not isinstance(size, str):
            return size, None
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return _unreadable(value, "the data: URI's base64 is not valid")
    return _bytes_outcome(value, data)


def _host(netloc: str) -> tuple[str, int | None] | None:
    """(host, port) of a netloc, loopback names as one; None when it does not parse."""
    try:
        split = urlsplit("//" + netloc)
        host, port = split.hostname or "", split.port
    except ValueError:
        return None
    return ("127.0.0.1" if host in _LOOPBACK else host), port


def _ours(c: AppContext, request: Request, parts: SplitResult) -> bool:
    """Whether a URL points at this server: the host the request used, or --public-url's."""
    netlocs = [request.headers.get("host", "")]
    if c.settings.public_url:
        netlocs.append(urlsplit(c.settings.public_url).netloc)
    here = _host(parts.netloc)
    return here is not None and here in {_host(n) for n in netlocs if n}


async def _local(
    c: AppContext, request: Request, owner: str, value: str, parts: SplitResult
) -> Outcome | None:
    """A file or output of this server, measured without HTTP; None for any other URL."""
    if m := _FILE.search(parts.path):
        f = await c.files.get(files_space(owner, m.group("prefix")), m.group("id"))
        if f is not None and f.expires_at > c.clock.now():
            return _bytes_outcome(value, f.data)
    elif m := _OUTPUT.search(parts.path):
        p = await c.store.get(m.group("id"))
        if (
            p is not None
            and m.group("ext") == p.fmt
            and int(m.group("index")) < p.outputs
            and c.state(p).status is Status.SUCCEEDED
        ):
            return (p.width, p.height), None
    else:
        return None
    # One of this server's paths with nothing there: the download would get a 404.
    return _not_downloaded(value, "HTTP 404 Not Found") if _ours(c, request, parts) else None


async def _fetch(url: str, limit: int, timeout: float) -> Outcome:
    """GET `url` and read until the header gives the size (at most `limit` bytes, `timeout` s
    in all)."""
    data = bytearray()
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(
                follow_redirects=True, headers={"User-Agent": f"mock-server/{__version__}"}
            ) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                return _not_downloaded(
                    url, f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                )
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    return _not_downloaded(url, f"larger than {limit} bytes (--max-file-bytes)")
                size = _size_of(data)
                if not isinstance(size, str):
                    return size, None
    except TimeoutError:
        return _not_downloaded(url, f"no complete answer within {timeout:g} s (--fetch-timeout)")
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError, ValueError) as exc:
        return _not_downloaded(url, _reason(exc))
    return _bytes_outcome(url, data)


def _reason(exc: Exception) -> str:
    """A short, stable description of a failed download (no object addresses)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
