"""`--retention SECONDS`: after it, a prediction's input, output and logs are removed
(`data_removed: true`) and its output files are gone (404), as on the real service."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.config import SettingsError
from tests.conftest import AUTH, CHECKED

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(clock: ManualClock) -> TestClient:
    app = create_app(Settings(retention=3600), clock=clock)
    c = TestClient(app, headers=AUTH)
    c.event_hooks = CHECKED
    return c


def test_data_is_removed_after_the_retention(client: TestClient, clock: ManualClock) -> None:
    p = client.post(SCHNELL, json={"input": {"prompt": "a cat"}}).json()
    clock.advance(10)  # schnell ends after about 1 s
    done = client.get(f"/v1/predictions/{p['id']}").json()
    assert (done["status"], done["data_removed"]) == ("succeeded", False)
    url = done["output"][0].removeprefix("http://testserver")
    assert client.get(url).status_code == 200
    clock.advance(3600)
    gone = client.get(f"/v1/predictions/{p['id']}").json()
    assert gone["status"] == "succeeded"
    assert gone["data_removed"] is True
    assert (gone["input"], gone["output"], gone["logs"]) == ({}, None, "")
    assert gone["metrics"] == done["metrics"]  # what the run cost stays
    assert client.get(url).status_code == 404
    listed = client.get("/v1/predictions").json()["results"][0]
    assert listed["data_removed"] is True


def test_only_predictions_past_the_retention_lose_their_data(
    client: TestClient, clock: ManualClock
) -> None:
    p = client.post(
        "/v1/models/black-forest-labs/flux-2-flex/predictions", json={"input": {"prompt": "x"}}
    ).json()
    clock.advance(5000)  # finished after ~24 s, so removed; a new one is not
    assert client.get(f"/v1/predictions/{p['id']}").json()["data_removed"] is True
    fresh = client.post(SCHNELL, json={"input": {"prompt": "y"}}).json()
    assert fresh["data_removed"] is False
    assert fresh["input"] == {"prompt": "y"}


def test_without_retention_data_stays() -> None:
    clock = ManualClock()
    with TestClient(create_app(Settings(), clock=clock), headers=AUTH) as c:
        p = c.post(SCHNELL, json={"input": {"prompt": "a cat"}}).json()
        clock.advance(10**7)
        assert c.get(f"/v1/predictions/{p['id']}").json()["data_removed"] is False


@pytest.mark.parametrize("value", [0.0, -5.0])
def test_retention_must_be_positive(value: float) -> None:
    with pytest.raises(SettingsError, match="retention"):
        Settings(retention=value)
