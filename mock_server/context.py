"""AppContext: everything a handler needs, built once by `create_app` and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import Scope

from mock_server.clock import Clock, ManualClock
from mock_server.config import Settings
from mock_server.errors import BadRequest, NotFound
from mock_server.fixtures import ModelFixture
from mock_server.image_cache import ImageCache
from mock_server.journal import Journal, JournalLike
from mock_server.lifecycle import State, state_at
from mock_server.models import Prediction
from mock_server.operations import Operation, build_operations
from mock_server.ratelimit import RateLimiter
from mock_server.rendered import FinishedBodies
from mock_server.responses import PREFIXES
from mock_server.scenarios import HEADER, RequestFacts, Scenario, ScenarioBook
from mock_server.spec import Spec
from mock_server.store import PredictionStore
from mock_server.timeline import ClockMode, StallGuard, Timeline, clock_for
from mock_server.uploads import FileStore, MemoryFileStore, files_space
from mock_server.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from mock_server.redis_store.control import SharedControl
    from mock_server.webhooks.delivery import AttemptLog
    from mock_server.webhooks.schedule import AgendaLike


_SYNCED = "mock_server.synced"  # in the ASGI scope: sync_request has run


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
    journal: JournalLike = field(default_factory=Journal)
    allowed_tokens: frozenset[str] = field(default_factory=frozenset)
    files: FileStore = field(default_factory=MemoryFileStore)  # the Files API's uploads
    # With a shared store (Redis): what every process must agree on beyond the records (resets,
    # the manual clock, run-time scenarios), and where the webhook schedule lives.
    shared: SharedControl | None = None
    agenda: AgendaLike | None = None  # the webhook schedule (default: this process's)
    attempt_log: AttemptLog | None = None  # webhook attempts (default: this process's)

    def __post_init__(self) -> None:
        self.by_version = {m.version: m for m in self.models.values()}
        self.operations = build_operations(self.spec)
        self.timeline = Timeline(self.clock, ClockMode(self.settings.clock))
        self.stall = StallGuard(self.clock, self.settings.clock_stall_timeout)
        self.rate_limiter = RateLimiter() if self.settings.rate_limits == "real" else None
        self.webhooks = WebhookDispatcher(self, self.agenda, self.attempt_log)
        self.store.finished = self._finished  # evict finished predictions first
        self.rendered = FinishedBodies()

    def clock_now(self) -> datetime:
        """The clock's time (the clock itself may be replaced by a reset)."""
        return self.clock.now()

    def _finished(self, p: Prediction) -> bool:
        return state_at(p, self.timeline.now_for(p)).status.terminal

    async def sync(self, *, fresh: bool = False) -> None:
        """Catch up with what other processes changed (a shared store only): a reset, the manual
        clock, run-time scenarios (`fresh`: re-read them, with the `times` each has left)."""
        if self.shared is not None:
            await self.shared.sync(self, fresh=fresh)

    async def sync_request(self, scope: Scope) -> None:
        """sync() before a request is served, once: a fast path that hands the request on to
        the ordinary route has done it already."""
        if self.shared is not None and not scope.get(_SYNCED):
            await self.shared.sync(self)
            scope[_SYNCED] = True

    async def reset_owner(self, owner: str) -> None:
        """Forget what one caller made: predictions, files, journal entries, webhooks, and the
        run-time scenarios that match its token (a shared server's per-job reset)."""
        await self.store.reset(owner)
        for prefix in PREFIXES:
            await self.files.reset(files_space(owner, prefix))
        await self.journal.clear(owner)
        await self.webhooks.reset(owner)
        for name in self.scenarios.owned_by(owner):
            await self.remove_scenario(name)
        self.forget_kept()  # the owner's ids start over
        if self.shared is not None:
            await self.shared.forgotten(owner)  # every other process forgets its copies too

    async def reset(self, **changes: object) -> None:
        """Forget every prediction, file, journal entry, webhook and run-time scenario
        (pytest-httpserver's `clear()`); `changes` may set a new seed, clock mode or time scale."""
        settings = replace(self.settings, **changes) if changes else self.settings  # type: ignore[arg-type]
        await self.store.reset()
        await self.journal.clear()
        await self.webhooks.reset()  # recorded attempts, and deliveries still pending
        await self.files.reset()
        if self.shared is not None:
            await self.shared.reset(self, changes)  # every other process follows
        self.apply_reset(settings, new_clock="clock" in changes)

    def forget_kept(self) -> None:
        """Drop what this process keeps of records (encoded bodies, shared records' copies)."""
        self.rendered.clear()
        self.store.forget_kept()

    def apply_reset(self, settings: Settings, *, new_clock: bool) -> None:
        """This process's part of a reset: caches, limits, settings and clock."""
        self.scenarios.reset()
        self.images.clear()
        self.forget_kept()
        if self.rate_limiter is not None:
            self.rate_limiter.reset()
        self.settings = settings
        mode = ClockMode(self.settings.clock)
        if new_clock:
            self.clock = clock_for(mode)
        self.timeline = Timeline(self.clock, mode)
        self.stall = StallGuard(self.clock, self.settings.clock_stall_timeout)

    async def add_scenario(self, scenario: Scenario) -> None:
        self.scenarios.add(scenario)
        if self.shared is not None:
            await self.shared.put_scenario(scenario)

    async def remove_scenario(self, name: str) -> bool:
        removed = self.scenarios.remove(name)
        if self.shared is not None:
            removed = await self.shared.drop_scenario(name) or removed
        return removed

    async def move_clock(self, *, advance: float | None = None, to: datetime | None = None) -> None:
        """Move the manual clock (every process's, with a shared store)."""
        clock = self.clock
        assert isinstance(clock, ManualClock)
        if advance is not None:
            clock.advance(advance)
        elif to is not None:
            clock.set(to)
        if self.shared is not None:
            await self.shared.set_clock(clock.now())

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

    async def scenarios_for(
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
        applied = []
        for rule in self.scenarios.select(facts):
            if rule.times is not None:
                spent = (
                    await self.shared.spend(rule)
                    if self.shared is not None
                    else self.scenarios.spend(rule)
                )
                if not spent:
                    continue
            applied.append(rule)
        return applied

    def model(self, owner: str, name: str) -> ModelFixture:
        fixture = self.models.get(f"{owner}/{name}")
        if fixture is None:
            raise NotFound()
        return fixture

    def public_base(self, request: Request) -> str:
        """Where clients reach us: --public-url, else the scheme and host the request used."""
        return self.base_of(request.scope, request.headers.get("host"))

    def base_of(self, scope: Scope, host: str | None) -> str:
        """public_base from the ASGI scope and the request's Host header."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
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
