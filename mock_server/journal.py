"""The request journal: what came in and what went out, bounded, tokens redacted (respx's
CallList, WireMock's request log). Filled by an ASGI middleware; read at /__admin/requests."""

from __future__ import annotations

import hashlib
import time as _time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_server.auth import owner_of

MAX_BODY = 4096
_MODEL_PATH = "/models/"


def redact(token: str | None) -> str | None:
    """A short hash, enough to tell callers apart, never the token."""
    if not token:
        return None
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(slots=True)
class Entry:
    """One request as it was seen; redaction, the model and text are worked out when read."""

    seq: int
    at: datetime
    method: str
    path: str
    query: bytes
    status: int
    authorization: bytes
    scenario: bytes | None
    duration_ms: float
    request_body: bytes
    response_body: bytes
    content_type: str
    _model: str | None = None
    _model_known: bool = False

    @property
    def model(self) -> str | None:
        if not self._model_known:
            self._model = _model_of(self.path, self.response_body, self.content_type)
            self._model_known = True
        return self._model

    def to_json(self) -> dict[str, Any]:
        token = self.authorization.decode("latin-1").partition(" ")[2].strip() or None
        return {
            "seq": self.seq,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "method": self.method,
            "path": self.path,
            "query": self.query.decode("latin-1"),
            "status": self.status,
            "model": self.model,
            "token": redact(token),
            "scenario": self.scenario.decode("latin-1") if self.scenario else None,
            "duration_ms": round(self.duration_ms, 3),
            "request_body": _text(self.request_body),
            "response_body": _text(self.response_body),
        }

    @property
    def owner(self) -> str | None:
        """The caller's owner key (auth.owner_of), for a per-token reset."""
        token = self.authorization.decode("latin-1").partition(" ")[2].strip()
        return owner_of(token) if token else None


class Journal:
    """The journal of this process (memory store); a shared store keeps one for every process
    (redis_store/journal.py) behind the same methods."""

    def __init__(self, limit: int = 10_000) -> None:
        self.entries: deque[Entry] = deque(maxlen=limit)
        self._seq = 0

    def append(self, entry: Entry) -> None:
        self._seq += 1
        entry.seq = self._seq
        self.entries.append(entry)

    async def clear(self, owner: str | None = None) -> None:
        """Forget every entry (only `owner`'s requests, when given)."""
        if owner is None:
            self.entries.clear()
            return
        kept = [e for e in self.entries if e.owner != owner]
        self.entries.clear()
        self.entries.extend(kept)

    async def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[Entry]:
        return find(self.entries, method=method, path=path, model=model, status=status, limit=limit)


def find(
    entries: Sequence[Entry],
    *,
    method: str | None = None,
    path: str | None = None,
    model: str | None = None,
    status: int | None = None,
    limit: int = 1000,
) -> list[Entry]:
    """Newest first (`entries` are oldest first); `path` matches as a prefix."""
    found: list[Entry] = []
    for e in reversed(entries):
        if method and e.method != method.upper():
            continue
        if path and not e.path.startswith(path):
            continue
        if model and e.model != model:
            continue
        if status is not None and e.status != status:
            continue
        found.append(e)
        if len(found) >= limit:
            break
    return found


def _text(raw: bytes) -> str:
    return raw[:MAX_BODY].decode("utf-8", errors="replace")


def _model_of(path: str, response: bytes, content_type: str) -> str | None:
    if _MODEL_PATH in path:
        rest = path.split(_MODEL_PATH, 1)[1].split("/")
        if len(rest) >= 2:
            return f"{rest[0]}/{rest[1]}"
    if content_type.startswith("application/json") and response[:1] == b"{":
        try:
            model = orjson.loads(response).get("model")
        except orjson.JSONDecodeError:
            return None
        return model if isinstance(model, str) else None
    return None


class JournalLike(Protocol):
    """What the middleware and the admin API need of a journal (Journal, RedisJournal)."""

    def append(self, entry: Entry) -> None: ...

    async def clear(self, owner: str | None = None) -> None: ...

    async def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[Entry]: ...


class JournalMiddleware:
    """Records every request outside /__admin (whose own calls would drown the log)."""

    def __init__(self, app: ASGIApp, journal: JournalLike, now: Callable[[], datetime]) -> None:
        self.app, self.journal, self.now = app, journal, now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__admin"):
            await self.app(scope, receive, send)
            return
        started = _time.perf_counter()
        at = self.now()
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []
        size = 0
        status = 500
        content_type = ""

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and sum(map(len, request_chunks)) < MAX_BODY:
                request_chunks.append(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status, content_type, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", []):
                    if key == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body" and size < MAX_BODY:
                body = message.get("body", b"")
                if not content_type.startswith(("image/", "text/event-stream")):
                    response_chunks.append(body)
                size += len(body)
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            authorization = b""
            scenario = None
            for key, value in scope.get("headers", ()):
                if key == b"authorization":
                    authorization = value
                elif key == b"x-mock-scenario":
                    scenario = value
            self.journal.append(
                Entry(
                    0,  # numbered by the journal
                    at,
                    scope["method"],
                    scope["path"],
                    scope.get("query_string", b""),
                    status,
                    authorization,
                    scenario,
                    (_time.perf_counter() - started) * 1000,
                    b"".join(request_chunks)[:MAX_BODY],
                    b"".join(response_chunks)[:MAX_BODY],
                    content_type,
                )
            )
