"""The rest of what the official clients read: account, models (paged), a model's versions,
hardware and collections, under both prefixes and in the real shapes (checked against the
contract by the client's hook)."""

from __future__ import annotations

import pytest
from replicate.client import Client
from starlette.testclient import TestClient

from tests.conftest import CHECKED, MODELS, PREFIXES, TOKEN, LiveServer


@pytest.mark.parametrize("prefix", PREFIXES)
def test_models_lists_the_eleven(client: TestClient, prefix: str) -> None:
    page = client.get(f"{prefix}/models").json()
    assert (page["next"], page["previous"]) == (None, None)
    names = [m["name"] for m in page["results"]]
    assert sorted(names) == sorted(MODELS)
    assert all(m["owner"] == "black-forest-labs" for m in page["results"])


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_models_versions(client: TestClient, prefix: str) -> None:
    model = client.get(f"{prefix}/models/black-forest-labs/flux-dev").json()
    versions = client.get(f"{prefix}/models/black-forest-labs/flux-dev/versions").json()
    assert [v["id"] for v in versions["results"]] == [model["latest_version"]["id"]]
    assert client.get(f"{prefix}/models/black-forest-labs/nope/versions").status_code == 404


@pytest.mark.parametrize("prefix", PREFIXES)
def test_account_is_named_after_the_token(client: TestClient, prefix: str) -> None:
    mine = client.get(f"{prefix}/account").json()
    other = client.get(f"{prefix}/account", headers={"Authorization": "Bearer other"}).json()
    assert mine["type"] == "user"
    assert mine["username"].startswith("mock-")
    assert mine["username"] != other["username"]
    assert client.get(f"{prefix}/account", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize("prefix", PREFIXES)
def test_hardware_and_collections(client: TestClient, prefix: str) -> None:
    skus = [h["sku"] for h in client.get(f"{prefix}/hardware").json()]
    assert "gpu-h100" in skus
    collections = client.get(f"{prefix}/collections").json()["results"]
    assert [c["slug"] for c in collections] == ["flux"]
    flux = client.get(f"{prefix}/collections/flux").json()
    assert sorted(m["name"] for m in flux["models"]) == sorted(MODELS)
    assert client.get(f"{prefix}/collections/sdxl").status_code == 404


def test_the_official_client_reads_them(live_server: LiveServer) -> None:
    """replicate 1.x parses these with its own models (pydantic), over real HTTP."""
    rc = Client(api_token=TOKEN, base_url=live_server.url + "/replicate", event_hooks=CHECKED)
    assert rc.accounts.current().username.startswith("mock-")
    assert len(rc.models.list().results) == 11
    assert rc.collections.get("flux").slug == "flux"
    assert "gpu-h100" in [h.sku for h in rc.hardware.list()]
    versions = rc.models.get("black-forest-labs/flux-schnell").versions.list()
    assert len(versions.results) == 1
