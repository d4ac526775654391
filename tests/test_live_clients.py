"""The official Python client (`replicate` 1.0.x) against a real uvicorn server.

Both base URLs are exercised: CometAPI's `<host>/replicate` (the client appends `/v1/...`) and
Replicate's bare `<host>`. Every client call that could poll runs in a daemon thread with a
deadline, so a server that never finishes fails the test instead of hanging it.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest
import replicate
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

from tests.conftest import CHECKED, TOKEN, LiveServer
from tests.threads import bounded as run_bounded

T = TypeVar("T")
DEADLINE_S = 15.0
BASES = {"comet": "/replicate", "replicate": ""}
ClientFactory = Callable[..., Client]


def bounded(call: Callable[[], T], timeout: float = DEADLINE_S) -> T:
    return run_bounded(call, timeout)


@pytest.fixture(params=sorted(BASES))
def make_client(
    request: pytest.FixtureRequest, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> ClientFactory:
    """Clients for one base URL; the poll interval is read when a Client is constructed."""
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    base_url = live_server.url + BASES[request.param]

    def build(api_token: str = TOKEN) -> Client:
        client = Client(
            api_token=api_token,
            base_url=base_url,
            timeout=httpx.Timeout(10.0),
            event_hooks=CHECKED,
        )
        assert client.poll_interval == pytest.approx(0.05)
        return client

    return build


@pytest.fixture
def rc(make_client: ClientFactory) -> Client:
    return make_client()


def status_of(prediction: Prediction) -> str:
    """The status now (a function call, so mypy does not keep a narrowed literal across reloads)."""
    status: str = prediction.status
    return status


def download_image(url: str) -> Image.Image:
    with httpx.Client(event_hooks=CHECKED, timeout=10) as http:
        response = http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_run_schnell_returns_two_webp_urls(rc: Client, live_server: LiveServer) -> None:
    output = bounded(
        lambda: rc.run(
            "black-forest-labs/flux-schnell", input={"prompt": "a cat", "num_outputs": 2}
        )
    )
    assert isinstance(output, list)
    assert len(output) == 2
    for url in output:
        assert type(url) is str  # http: URLs are not wrapped in FileOutput
        assert url.startswith(live_server.url + "/")
        image = download_image(url)
        assert image.format == "WEBP"
        assert image.size == (1024, 1024)
    assert output[0] != output[1]


def test_create_and_wait_flux_dev(rc: Client) -> None:
    prediction = rc.models.predictions.create(
        model="black-forest-labs/flux-dev",
        input={"prompt": "a lighthouse", "num_inference_steps": 8},
    )
    assert prediction.status == "starting"
    assert prediction.version == "hidden"
    assert prediction.progress is None
    bounded(prediction.wait)
    assert status_of(prediction) == "succeeded"
    assert isinstance(prediction.output, list)
    assert len(prediction.output) == 1
    assert prediction.started_at is not None
    assert prediction.completed_at is not None
    assert prediction.metrics is not None
    assert prediction.metrics["image_count"] == 1
    progress = prediction.progress
    assert progress is not None
    assert (progress.current, progress.total) == (8, 8)
    assert progress.percentage == pytest.approx(1.0)


def test_cancel_running_flux_2_flex(rc: Client) -> None:
    """flux-2-flex runs about 0.45 s at this scale; retry if a slow machine let one finish."""
    for _ in range(3):
        prediction = rc.models.predictions.create(
            model="black-forest-labs/flux-2-flex", input={"prompt": "a slow painting"}
        )
        deadline = time.monotonic() + DEADLINE_S
        while status_of(prediction) == "starting" and time.monotonic() < deadline:
            time.sleep(0.005)
            prediction.reload()
        if status_of(prediction) != "processing":
            continue
        prediction.cancel()
        prediction.reload()
        if status_of(prediction) == "succeeded":
            continue
        assert status_of(prediction) == "canceled"
        assert prediction.output is None
        assert prediction.completed_at is not None
        assert prediction.started_at is not None
        # Terminal states never change, and cancelling again is harmless.
        time.sleep(0.6)
        prediction.reload()
        assert status_of(prediction) == "canceled"
        prediction.cancel()
        assert status_of(prediction) == "canceled"
        return
    pytest.fail("could not catch a flux-2-flex prediction while it was processing")


def test_list_contains_created_ids(rc: Client) -> None:
    created = [
        rc.models.predictions.create(
            model="black-forest-labs/flux-schnell", input={"prompt": f"listed {i}"}
        ).id
        for i in range(3)
    ]
    page = rc.predictions.list()
    listed = [p.id for p in page.results]
    assert set(created) <= set(listed)
    # Newest first.
    assert [i for i in listed if i in created] == created[::-1]


def test_paginate_past_one_hundred(make_client: ClientFactory) -> None:
    """A fresh token sees exactly its own 101 predictions: one full page, then one more."""
    rc = make_client(f"r8_paginate_{uuid.uuid4().hex}")
    created = [
        rc.models.predictions.create(
            model="black-forest-labs/flux-schnell", input={"prompt": f"page {i}"}
        ).id
        for i in range(101)
    ]
    first = rc.predictions.list()
    assert len(first.results) == 100
    assert first.next is not None
    assert first.next.startswith("http")  # absolute, as the clients need
    second = rc.predictions.list(first.next)
    assert [p.id for p in second.results] == created[:1]
    assert second.next is None
    pages = list(replicate.paginate(rc.predictions.list))
    assert [len(p.results) for p in pages] == [100, 1]
    assert [p.id for page in pages for p in page.results] == created[::-1]


def test_run_pinned_version_returns_single_url(rc: Client) -> None:
    model = rc.models.get("black-forest-labs/flux-2-pro")
    assert model.latest_version is not None
    version_id = model.latest_version.id
    assert len(version_id) == 64
    output = bounded(
        lambda: rc.run(
            f"black-forest-labs/flux-2-pro:{version_id}",
            input={"prompt": "a pinned version", "output_format": "png"},
        )
    )
    assert isinstance(output, str)
    assert output.endswith(".png")
    image = download_image(output)
    assert image.format == "PNG"


def test_run_invalid_input_raises_422(rc: Client) -> None:
    with pytest.raises(ReplicateError) as caught:
        bounded(
            lambda: rc.run(
                "black-forest-labs/flux-schnell", input={"prompt": "x", "num_outputs": 9}
            )
        )
    assert caught.value.status == 422
    assert "num_outputs" in str(caught.value.detail)


def test_missing_token_raises_401(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Authorization header at all (the client sends none without a token)."""
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    client = Client(api_token="", base_url=live_server.url, event_hooks=CHECKED)
    with pytest.raises(ReplicateError) as caught:
        bounded(lambda: client.predictions.list())
    assert caught.value.status == 401
