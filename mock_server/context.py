"""AppContext: everything a handler needs, built once by `create_app` and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request

from mock_server.clock import Clock
from mock_server.config import Settings
from mock_server.errors import NotFound
from mock_server.fixtures import ModelFixture
from mock_server.image_cache import ImageCache
from mock_server.lifecycle import State, state_at
from mock_server.models import Prediction
from mock_server.operations import Operation, build_operations
from mock_server.spec import Spec
from mock_server.store import PredictionStore
from mock_server.timeline import ClockMode, Timeline


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    store: PredictionStore
    spec: Spec
    models: dict[str, ModelFixture]
    images: ImageCache
    started_at: datetime
    allowed_tokens: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        self.by_version = {m.version: m for m in self.models.values()}
        self.operations = build_operations(self.spec)
        self.timeline = Timeline(self.clock, ClockMode(self.settings.clock))

    def state(self, p: Prediction) -> State:
        """Where `p` is now, as this server's clock mode sees it."""
        return state_at(p, self.timeline.now_for(p))

    def model(self, owner: str, name: str) -> ModelFixture:
        fixture = self.models.get(f"{owner}/{name}")
        if fixture is None:
            raise NotFound()
        return fixture

    def public_base(self, request: Request) -> str:
        """Where clients reach us: --public-url, else the scheme and host the request used."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        scope = request.scope
        host = request.headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", self.settings.port)
            host = f"{server[0]}:{server[1]}"
        # `app_root_path` is the root path before any Mount added its prefix.
        return f"{scope['scheme']}://{host}{scope.get('app_root_path', scope.get('root_path', ''))}"


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets beside the request: the app's context, the spec operation it serves
    (already checked: security, query, headers) and the caller's owner key ("" without security)."""

    ctx: AppContext
    op: Operation
    owner: str
