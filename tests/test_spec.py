"""openapi.yaml: valid, served as loaded, and in step with the route table and the fixtures."""

from __future__ import annotations

import yaml
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server.app import flat_routes
from mock_server.config import Settings
from mock_server.fixtures import load_fixtures
from mock_server.spec import load_spec
from tests.conftest import MODELS


def test_the_spec_is_valid_openapi() -> None:
    validate(yaml.safe_load(Settings().spec_path.read_text()))


def test_operation_ids_are_the_route_names(app: Starlette) -> None:
    """The spec and the code cannot drift: every route is documented and every operation served."""
    names = {r.name for _, r in flat_routes(app.routes)}
    assert load_spec(Settings().spec_path).operation_ids() == names


def test_every_route_is_under_both_prefixes(app: Starlette) -> None:
    paths = {path for path, _ in flat_routes(app.routes)}
    api = {p.removeprefix("/v1") for p in paths if p.startswith("/v1/")}
    comet = {p.removeprefix("/replicate/v1") for p in paths if p.startswith("/replicate/v1/")}
    assert api == comet
    assert {"/predictions", "/models", "/account", "/hardware", "/collections"} <= api


def test_spec_paths_match_the_routes(app: Starlette) -> None:
    spec = load_spec(Settings().spec_path).document
    documented = {
        path.replace("{model_owner}", "{o}").replace("{model_name}", "{n}")
        for path in spec["paths"]
    }
    served = {
        path.replace("{model_owner}", "{o}").replace("{model_name}", "{n}")
        for path, _ in flat_routes(app.routes)
    }
    assert documented == served


def test_enums_list_the_bundled_models() -> None:
    spec = load_spec(Settings().spec_path).document
    models = load_fixtures(Settings().fixtures_dir)
    names = spec["components"]["parameters"]["ModelName"]["schema"]["enum"]
    assert sorted(names) == sorted(MODELS)
    versions = spec["components"]["schemas"]["VersionPredictionRequest"]["properties"]["version"]
    expected = {*models, *(f"{k}:{m.version}" for k, m in models.items())}
    expected |= {m.version for m in models.values()}
    assert set(versions["enum"]) == expected


def test_the_spec_is_served_as_loaded(client: TestClient) -> None:
    raw = Settings().spec_path.read_bytes()
    response = client.get("/openapi.yaml", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.content == raw
    as_json = client.get("/openapi.json")
    assert as_json.json() == yaml.safe_load(raw)
