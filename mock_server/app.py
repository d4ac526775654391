"""create_app(): builds the context (settings, clock, store, spec, fixtures) and the route table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount, Route, compile_path

from mock_server.clock import Clock, SystemClock
from mock_server.config import Settings
from mock_server.context import AppContext
from mock_server.errors import APIError, handle_api_error
from mock_server.fixtures import load_fixtures
from mock_server.image_cache import ImageCache
from mock_server.responses import COMET_PREFIX, REPLICATE_PREFIX
from mock_server.routes import files, models, predictions, stream
from mock_server.spec import load_spec
from mock_server.store import MemoryStore, PredictionStore


def api_routes(prefix: str, name_prefix: str) -> Mount:
    """The API under one prefix; route names are the spec's operationIds (most used first)."""
    table = [
        ("/predictions/{prediction_id}", "GET", predictions.get_prediction, "getPrediction"),
        (
            "/models/{model_owner}/{model_name}/predictions",
            "POST",
            predictions.create_prediction,
            "createPrediction",
        ),
        (
            "/predictions",
            "POST",
            predictions.create_prediction_by_version,
            "createPredictionByVersion",
        ),
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
    ]
    return Mount(
        prefix,
        routes=[
            Route(path, endpoint, methods=[method], name=name_prefix + op)
            for path, method, endpoint, op in table
        ],
    )


def flat_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, Route]]:
    """(full path, route) for every Route, looking inside Mounts."""
    for route in routes:
        if isinstance(route, Mount):
            yield from flat_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    store: PredictionStore | None = None,
) -> Starlette:
    """A fresh app: nothing is shared with any other app in the process."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    context = AppContext(
        settings=settings,
        clock=clock,
        store=store or MemoryStore(settings.max_predictions),
        spec=load_spec(settings.spec_path),
        models=load_fixtures(settings.fixtures_dir),
        images=ImageCache(settings.image_cache_bytes),
        started_at=clock.now(),
        allowed_tokens=frozenset(settings.api_tokens),
    )
    routes = [
        api_routes(COMET_PREFIX, ""),
        api_routes(REPLICATE_PREFIX, "v1_"),
        Route(
            "/delivery/{prediction_id}/{filename}",
            files.get_output_file,
            methods=["GET"],
            name="getOutputFile",
        ),
        Route(
            "/stream/{prediction_id}",
            stream.stream_prediction,
            methods=["GET"],
            name="streamPrediction",
        ),
        Route(
            "/p/{prediction_id}",
            stream.get_prediction_page,
            methods=["GET"],
            name="getPredictionPage",
        ),
        Route("/openapi.yaml", files.get_openapi_yaml, methods=["GET"], name="getOpenapiYaml"),
        Route("/openapi.json", files.get_openapi_json, methods=["GET"], name="getOpenapiJson"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            APIError: handle_api_error,
            HTTPException: handle_api_error,
            Exception: handle_api_error,
        },
    )
    app.state.ctx = context
    app.state.allow_table = [
        (compile_path(path)[0], set(route.methods or ())) for path, route in flat_routes(routes)
    ]
    return app
