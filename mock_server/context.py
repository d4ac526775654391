"""AppContext: everything a handler needs, built once by `create_app` and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from starlette.requests import Request

from mock_server.clock import Clock
from mock_server.config import Settings
from mock_server.errors import BadRequest, NotFound
from mock_server.fixtures import ModelFixture
from mock_server.image_cache import ImageCache
from mock_server.journal import Journal
from mock_server.lifecycle import State, state_at
from mock_server.models import Prediction
from mock_server.operations import Operation, build_operations
from mock_server.ratelimit import RateLimiter
from mock_server.scenarios import HEADER, RequestFacts, Scenario, ScenarioBook
from mock_server.spec import Spec
from mock_server.store import PredictionStore
from mock_server.timeline import ClockMode, StallGuard, Timeline, clock_for
from mock_server.uploads import FileStore, MemoryFileStore
from mock_server.webhooks import WebhookDispatcher


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    store: PredictionStore
    spec: Spec
    models: dict[str, ModelFixture]
    images: ImageCache
    started_at: datetime
    scenarios: ScenarioBook
    journal: Journal = field(default_factory=Journal)
    allowed_tokens: frozenset[str] = field(default_factory=frozenset)
    files: FileStore = field(default_factory=MemoryFileStore)  # the Files API's uploads

    def __post_init__(self) -> None:
        self.by_version = {m.version: m for m in self.models.values()}
        self.operations = build_operations(self.spec)
        self.timeline = Timeline(self.clock, ClockMode(self.settings.clock))
        self.stall = StallGuard(self.clock, self.settings.clock_stall_timeout)
        self.rate_limiter = RateLimiter() if self.settings.rate_limits == "real" else None
        self.webhooks = WebhookDispatcher(self)

    def reset(self, **changes: object) -> None:
        """Forget every prediction, journal entry and run-time scenario (pytest-httpserver's
        `clear()`); `changes` may set a new seed, clock mode or time scale."""
        settings = replace(self.settings, **changes) if changes else self.settings  # type: ignore[arg-type]
        self.store.reset()
        self.journal.clear()
        self.webhooks.reset()  # recorded attempts, and deliveries still pending
        self.scenarios.reset()
        self.images.clear()
        self.files.reset()
        if self.rate_limiter is not None:
            self.rate_limiter.reset()
        self.settings = settings
        mode = ClockMode(self.settings.clock)
        if "clock" in changes:
            self.clock = clock_for(mode)
        self.timeline = Timeline(self.clock, mode)
        self.stall = StallGuard(self.clock, self.settings.clock_stall_timeout)

    def state(self, p: Prediction) -> State:
        """Where `p` is now, as this server's clock mode sees it."""
        state = state_at(p, self.timeline.now_for(p))
        retention = self.settings.retention
        if (
            retention is not None
            and state.completed_at is not None
            and (self.clock.now() - state.completed_at).total_seconds() >= retention
        ):
            return replace(state, data_removed=True)
        return state

    def scenarios_for(
        self, request: Request, route: str, model: str | None = None, prompt: str | None = None
    ) -> list[Scenario]:
        """The scenarios for this request; 400 for an `X-Mock-Scenario` that names none."""
        header = request.headers.get(HEADER)
        if not self.scenarios.active(header):
            return []
        if self.scenarios.unknown(header):
            raise BadRequest(f"Unknown scenario {header!r} in X-Mock-Scenario.")
        params = request.path_params
        if model is None and "model_owner" in params:
            model = f"{params['model_owner']}/{params['model_name']}"
        facts = RequestFacts(
            method=request.method,
            route=route,
            token=request.headers.get("authorization", "").partition(" ")[2].strip() or None,
            model=model,
            prompt=prompt,
            header=header,
        )
        return self.scenarios.select(facts)

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
