"""Same seed, same requests -> same ids and the same image bytes, in-process and across restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH, CHECKED, start_live_server

CREATE = "/replicate/v1/models/black-forest-labs/{model}/predictions"
SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("flux-schnell", {"prompt": "a red fox", "num_outputs": 2}),
    ("flux-dev", {"prompt": "a lighthouse at dusk", "output_format": "png"}),
    ("flux-2-pro", {"prompt": "a bowl of ramen", "aspect_ratio": "16:9"}),
    ("flux-1.1-pro", {"prompt": "a red fox", "output_format": "jpg"}),
    ("flux-schnell", {"prompt": "a red fox", "num_outputs": 2, "seed": 11}),
]

Pair = tuple[TestClient, ManualClock]


@pytest.fixture
def make_app() -> Iterator[Callable[[Settings], Pair]]:
    """Build independent apps (each with its own ManualClock); all closed at teardown."""
    with ExitStack() as stack:

        def build(settings: Settings) -> Pair:
            clock = ManualClock()
            client = stack.enter_context(
                TestClient(create_app(settings, clock=clock), raise_server_exceptions=False)
            )
            client.headers.update(AUTH)
            client.event_hooks = CHECKED
            return client, clock

        yield build


def create(client: TestClient, model: str, inp: dict[str, Any], **headers: str) -> str:
    response = client.post(CREATE.format(model=model), json={"input": inp}, headers=headers)
    assert response.status_code == 200, response.text
    prediction_id = response.json()["id"]
    assert isinstance(prediction_id, str)
    return prediction_id


def create_all(client: TestClient) -> list[str]:
    return [create(client, model, inp) for model, inp in SEQUENCE]


def noise(client: TestClient, ids: list[str]) -> None:
    """Requests that must not disturb the ids of the main sequence."""
    create(client, "flux-kontext-pro", {"prompt": "unrelated"})
    create(client, "flux-schnell", {"prompt": "a red fox", "num_outputs": 3})
    create(
        client,
        "flux-schnell",
        {"prompt": "a red fox", "num_outputs": 2},
        authorization="Bearer other",
    )
    for prediction_id in ids:
        assert client.get(f"/replicate/v1/predictions/{prediction_id}").status_code == 200
    assert client.get("/replicate/v1/predictions").status_code == 200
    assert client.get("/v1/models/black-forest-labs/flux-dev").status_code == 200


def outputs(client: TestClient, prediction_id: str) -> list[bytes]:
    data = client.get(f"/replicate/v1/predictions/{prediction_id}").json()
    assert data["status"] == "succeeded", data
    urls = data["output"] if isinstance(data["output"], list) else [data["output"]]
    blobs = []
    for url in urls:
        response = client.get(urlsplit(url).path)
        assert response.status_code == 200, url
        blobs.append(response.content)
    return blobs


def test_same_seed_same_ids(make_app: Callable[[Settings], Pair]) -> None:
    (a, _), (b, _) = make_app(Settings(seed=7)), make_app(Settings(seed=7))
    ids_a, ids_b = create_all(a), create_all(b)
    assert ids_a == ids_b
    assert len(set(ids_a)) == len(ids_a)


def test_interleaved_requests_do_not_shift_ids(make_app: Callable[[Settings], Pair]) -> None:
    (quiet, _), (noisy, noisy_clock) = make_app(Settings(seed=7)), make_app(Settings(seed=7))
    expected = create_all(quiet)
    got: list[str] = []
    for model, inp in SEQUENCE:
        noise(noisy, got)
        noisy_clock.advance(1.5)
        got.append(create(noisy, model, inp))
    noise(noisy, got)
    assert got == expected


def test_repeated_requests_get_distinct_but_reproducible_ids(
    make_app: Callable[[Settings], Pair],
) -> None:
    (a, _), (b, _) = make_app(Settings(seed=7)), make_app(Settings(seed=7))
    model, inp = SEQUENCE[0]
    ids_a = [create(a, model, inp) for _ in range(4)]
    ids_b = [create(b, model, inp) for _ in range(4)]
    assert len(set(ids_a)) == 4
    assert ids_a == ids_b


def test_other_seed_other_ids(make_app: Callable[[Settings], Pair]) -> None:
    (a, _), (b, _) = make_app(Settings(seed=7)), make_app(Settings(seed=8))
    assert set(create_all(a)).isdisjoint(create_all(b))


def test_other_token_other_ids(make_app: Callable[[Settings], Pair]) -> None:
    client, _ = make_app(Settings(seed=7))
    model, inp = SEQUENCE[0]
    mine = create(client, model, inp)
    theirs = create(client, model, inp, authorization="Bearer someone-else")
    assert mine != theirs


def test_output_bytes_identical_across_apps(make_app: Callable[[Settings], Pair]) -> None:
    (a, clock_a), (b, clock_b) = make_app(Settings(seed=7)), make_app(Settings(seed=7))
    ids_a, ids_b = create_all(a), create_all(b)
    clock_a.advance(60)
    clock_b.advance(60)
    for id_a, id_b in zip(ids_a, ids_b, strict=True):
        blobs_a, blobs_b = outputs(a, id_a), outputs(b, id_b)
        assert blobs_a == blobs_b
        assert all(blobs_a)
    # Different predictions render different images.
    first, second = outputs(a, ids_a[0])
    assert first != second


def run_live_session(settings: Settings) -> tuple[list[str], list[list[bytes]]]:
    """Start a real server, create SEQUENCE over HTTP, wait for each, download, stop it."""
    live, thread = start_live_server(settings)
    try:
        with httpx.Client(base_url=live.url, headers=AUTH, timeout=10, event_hooks=CHECKED) as http:
            ids = []
            for model, inp in SEQUENCE:
                response = http.post(CREATE.format(model=model), json={"input": inp})
                assert response.status_code == 200, response.text
                ids.append(response.json()["id"])
            images = []
            for prediction_id in ids:
                data = poll_until_done(http, prediction_id)
                urls = data["output"] if isinstance(data["output"], list) else [data["output"]]
                images.append([http.get(urlsplit(u).path).raise_for_status().content for u in urls])
            return ids, images
    finally:
        live.server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "live server did not stop"


def poll_until_done(http: httpx.Client, prediction_id: str) -> dict[str, Any]:
    """Timings are scaled to 1% (well under a second); give up after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data: dict[str, Any] = http.get(f"/replicate/v1/predictions/{prediction_id}").json()
        if data["status"] not in ("starting", "processing"):
            assert data["status"] == "succeeded", data
            return data
    pytest.fail(f"prediction {prediction_id} did not finish within 10 s")


def test_restarted_server_reproduces_ids_and_bytes() -> None:
    settings = Settings(seed=3, time_scale=0.01)
    first_ids, first_images = run_live_session(settings)
    second_ids, second_images = run_live_session(settings)
    assert second_ids == first_ids
    assert second_images == first_images
    assert all(blob for blobs in first_images for blob in blobs)
