"""create_app(): builds the context (settings, clock, store, spec, fixtures) and the route table."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router, compile_path
from starlette.types import Receive, Scope, Send

from mock_server import images
from mock_server.auth import authenticate, authenticate_admin
from mock_server.clock import Clock
from mock_server.config import Settings
from mock_server.context import AppContext, Call
from mock_server.errors import APIError, StoreUnavailable, handle_api_error
from mock_server.fixtures import load_fixtures
from mock_server.image_cache import ImageCache
from mock_server.journal import JournalMiddleware
from mock_server.redis_store import RedisParts, open_redis
from mock_server.redis_store.connection import DOWN, down_handler
from mock_server.responses import COMET_PREFIX, REPLICATE_PREFIX
from mock_server.routes import (
    admin,
    demo,
    fastpath,
    files,
    models,
    predictions,
    stream,
    uploads,
    webhooks,
)
from mock_server.scenarios import (
    ScenarioBook,
    apply_http,
    load_file,
)
from mock_server.spec import SpecError, load_spec
from mock_server.store import MemoryStore, PredictionStore
from mock_server.timeline import ClockMode, clock_for, mode_for

log = logging.getLogger("mock_server")
Handler = Callable[[Request, Call], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

# (path, method, handler, operationId): served under both prefixes, most used first.
API: list[tuple[str, str, Handler, str]] = [
    ("/predictions/{prediction_id}", "GET", predictions.get_prediction, "getPrediction"),
    (
        "/models/{model_owner}/{model_name}/predictions",
        "POST",
        predictions.create_prediction,
        "createPrediction",
    ),
    ("/predictions", "POST", predictions.create_prediction_by_version, "createPredictionByVersion"),
    ("/predictions", "GET", predictions.list_predictions, "listPredictions"),
    (
        "/predictions/{prediction_id}/cancel",
        "POST",
        predictions.cancel_prediction,
        "cancelPrediction",
    ),
    ("/models/{model_owner}/{model_name}", "GET", models.get_model, "getModel"),
    (
        "/models/{model_owner}/{model_name}/versions/{version_id}",
        "GET",
        models.get_model_version,
        "getModelVersion",
    ),
    (
        "/models/{model_owner}/{model_name}/versions",
        "GET",
        models.list_model_versions,
        "listModelVersions",
    ),
    ("/models", "GET", models.list_models, "listModels"),
    ("/account", "GET", models.get_account, "getAccount"),
    ("/hardware", "GET", models.list_hardware, "listHardware"),
    ("/collections", "GET", models.list_collections, "listCollections"),
    ("/collections/{collection_slug}", "GET", models.get_collection, "getCollection"),
    ("/webhooks/default/secret", "GET", webhooks.get_default_secret, "getDefaultWebhookSecret"),
    ("/files", "POST", uploads.create_file, "createFile"),
    ("/files", "GET", uploads.list_files, "listFiles"),
    ("/files/{file_id}", "GET", uploads.get_file, "getFile"),
    ("/files/{file_id}", "DELETE", uploads.delete_file, "deleteFile"),
    ("/files/{file_id}/download", "GET", uploads.download_file, "downloadFile"),
]
# Outside the prefixes.
OTHER: list[tuple[str, str, Handler, str]] = [
    ("/delivery/{prediction_id}/{filename}", "GET", files.get_output_file, "getOutputFile"),
    ("/stream/{prediction_id}", "GET", stream.stream_prediction, "streamPrediction"),
    ("/p/{prediction_id}", "GET", stream.get_prediction_page, "getPredictionPage"),
    ("/openapi.yaml", "GET", files.get_openapi_yaml, "getOpenapiYaml"),
    ("/openapi.json", "GET", files.get_openapi_json, "getOpenapiJson"),
    ("/", "GET", demo.get_demo_page, "getDemoPage"),
    ("/static/{asset}", "GET", demo.get_demo_asset, "getDemoAsset"),
]
ADMIN: list[tuple[str, str, Handler, str]] = [
    ("/__admin/health", "GET", admin.health, "adminHealth"),
    ("/__admin/reset", "POST", admin.reset, "adminReset"),
    ("/__admin/clock", "GET", admin.get_clock, "adminGetClock"),
    ("/__admin/clock", "POST", admin.move_clock, "adminMoveClock"),
    ("/__admin/requests", "GET", admin.list_requests, "adminListRequests"),
    ("/__admin/requests", "DELETE", admin.clear_requests, "adminClearRequests"),
    ("/__admin/scenarios", "GET", admin.list_scenarios, "adminListScenarios"),
    ("/__admin/scenarios", "POST", admin.add_scenario, "adminAddScenario"),
    ("/__admin/scenarios/{name}", "DELETE", admin.remove_scenario, "adminRemoveScenario"),
    ("/__admin/predictions", "GET", admin.list_all_predictions, "adminListPredictions"),
    ("/__admin/webhooks", "GET", webhooks.list_webhook_attempts, "adminListWebhooks"),
    (
        "/__admin/predictions/{prediction_id}/{action}",
        "POST",
        admin.force_prediction,
        "adminForcePrediction",
    ),
]
# Creates choose their scenarios once the body (model, prompt) is read; see predictions.py.
CREATES = {"createPrediction", "createPredictionByVersion"}
UNSCENARIOED = {"getOpenapiYaml", "getOpenapiJson"}


def bind(context: AppContext, operation_id: str, handler: Handler) -> Endpoint:
    """The endpoint for one spec operation: security, query and headers checked as the spec
    says, scenarios applied, then the handler."""
    op = context.operations.get(operation_id)
    if op is None:
        raise SpecError(f"{context.settings.spec_path}: no operation `{operation_id}` in paths")
    check_query = bool(op.query)
    route = operation_id.removeprefix("v1_")
    is_admin = operation_id.startswith("admin")
    scenarios = not is_admin and route not in CREATES and route not in UNSCENARIOED

    async def endpoint(request: Request) -> Response:
        await context.sync_request(request.scope)  # a shared store: what others changed
        if is_admin:
            owner = authenticate_admin(request, context.settings.admin_token)
        else:
            owner = authenticate(request, context.allowed_tokens) if op.secured else ""
        if request.scope["query_string"] or check_query:
            op.check_query(request.query_params.keys(), request.query_params)
        if op.headers:
            op.check_headers(request.headers)
        if scenarios:
            await apply_http(await context.scenarios_for(request, route))
        if context.rate_limiter is not None and op.secured and not is_admin:
            context.rate_limiter.take(owner, "create" if route in CREATES else "other")
        return await handler(request, Call(context, op, owner))

    endpoint.__name__ = handler.__name__
    return endpoint


def build_routes(context: AppContext) -> list[BaseRoute]:
    def routes(table: list[tuple[str, str, Handler, str]], name_prefix: str) -> list[BaseRoute]:
        return [
            Route(path, bind(context, name_prefix + op, h), methods=[method], name=name_prefix + op)
            for path, method, h, op in table
        ]

    return [
        Mount(COMET_PREFIX, app=Router(routes(API, ""), redirect_slashes=False)),
        Mount(REPLICATE_PREFIX, app=Router(routes(API, "v1_"), redirect_slashes=False)),
        *routes(OTHER, ""),
        *routes(ADMIN, ""),
    ]


class HotRouter(Router):
    """Starlette's router, except that the two hottest routes (get a prediction, create one by
    model) are found with one regular expression instead of by trying the routes of both
    prefixes in turn. Everything else, and every other method on these paths (405s), goes the
    usual way."""

    def __init__(self, *args: Any, hot: dict[tuple[str, str], Route], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hot = hot  # (method, prefix) -> route; "get" and "create" told apart by the match

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (m := fastpath.HOT.match(scope["path"])) is not None:
            prefix, prediction_id, owner, name = m.groups()
            method = scope["method"]
            route = None
            if prediction_id is not None and method == "GET":
                route = self.hot.get(("get", prefix))
                params = {"prediction_id": prediction_id}
            elif owner is not None and method == "POST":
                route = self.hot.get(("create", prefix))
                params = {"model_owner": owner, "model_name": name}
            if route is not None:
                scope["router"] = self
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = params
                await route.app(scope, receive, send)
                return
        await super().app(scope, receive, send)


class EmulatorApp(Starlette):
    """The Starlette app behind two outer layers: the request journal (it sees every answer,
    the middleware's 500s included), then the fast paths (routes/fastpath.py), which answer the
    plain hot requests without Starlette's middleware, request objects or routing."""

    def __init__(self, *args: Any, ctx: AppContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast = fastpath.FastRoutes(ctx)
        self.outer = JournalMiddleware(self._dispatch, journal=ctx.journal, now=ctx.clock_now)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.outer(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handed = await self.fast(scope, receive, send)
            if handed is None:
                return
            receive = handed
        await super().__call__(scope, receive, send)


def hot_routes(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], Route]:
    by_name = {route.name: route for _, route in flat_routes(routes)}
    return {
        ("get", COMET_PREFIX): by_name["getPrediction"],
        ("get", REPLICATE_PREFIX): by_name["v1_getPrediction"],
        ("create", COMET_PREFIX): by_name["createPrediction"],
        ("create", REPLICATE_PREFIX): by_name["v1_createPrediction"],
    }


def flat_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """(full path, route) for every Route, looking inside Mounts."""
    for route in routes:
        if isinstance(route, Mount):
            yield from flat_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def _lifespan(
    context: AppContext, shared: RedisParts | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """With Redis: join the shared state at start (a Redis that is away only delays that), follow
    the other processes' changes, and watch the shared webhook schedule; close at the end."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # No first render pays for loading the encoders, nor for setting up the worker threads
        # renders run in (ImageCache renders through anyio's: about 30 ms the first time).
        await anyio.to_thread.run_sync(images.warm)
        if shared is not None:
            try:
                await context.sync()
            except StoreUnavailable as exc:
                log.warning("starting without the store for now: %s", exc.detail)
            shared.control.listen(context)
            context.webhooks.start()
        try:
            yield
        finally:
            if shared is not None:
                await context.webhooks.reset_runner()
                await shared.close()

    return lifespan


def _default_store(settings: Settings, shared: RedisParts | None) -> PredictionStore:
    return shared.store if shared is not None else MemoryStore(settings.max_predictions)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    store: PredictionStore | None = None,
) -> Starlette:
    """A fresh app: nothing is shared with any other app in the process."""
    settings = settings or Settings.from_env(os.environ)  # as the CLI does
    requested = ClockMode(settings.clock)
    clock = clock or clock_for(requested)
    settings = replace(settings, clock=mode_for(clock, requested).value)
    spec = load_spec(settings.spec_path)
    scenario_schema = spec.validator("ScenarioRequest")
    shared = open_redis(settings) if settings.store != "memory" else None
    parts: dict[str, Any] = {}
    if shared is not None:
        parts = {
            "files": shared.files,
            "journal": shared.journal,
            "shared": shared.control,
            "agenda": shared.agenda,
            "attempt_log": shared.attempts,
        }
    context = AppContext(
        settings=settings,
        clock=clock,
        store=store or _default_store(settings, shared),
        spec=spec,
        models=load_fixtures(settings.fixtures_dir),
        images=ImageCache(settings.image_cache_bytes),
        started_at=clock.now(),
        scenarios=ScenarioBook(
            load_file(settings.scenarios_path, scenario_schema) if settings.scenarios_path else [],
            scenario_schema,
        ),
        allowed_tokens=frozenset(settings.api_tokens),
        **parts,
    )
    routes = build_routes(context)
    handlers: dict[Any, Any] = {
        APIError: handle_api_error,
        HTTPException: handle_api_error,
        ClientDisconnect: handle_api_error,  # answered, not logged as a server error
        Exception: handle_api_error,
    }
    if shared is not None:
        for error in DOWN:  # anything that reached Redis without a guard: still a 503
            handlers[error] = down_handler(settings.store)
    lifespan = _lifespan(context, shared)
    app = EmulatorApp(routes=routes, exception_handlers=handlers, lifespan=lifespan, ctx=context)
    # `/v1/predictions/` is a 404, not a redirect.
    app.router = HotRouter(
        routes, redirect_slashes=False, lifespan=lifespan, hot=hot_routes(routes)
    )
    app.state.ctx = context
    app.state.allow_table = [
        (compile_path(path)[0], set(route.methods or ())) for path, route in flat_routes(routes)
    ]
    return app
