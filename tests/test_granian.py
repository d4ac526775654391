"""`mock-server --server granian`: the same emulator under granian, started as users start it,
driven by the official Python client (`replicate` 1.x): runs, sync mode, streams, uploads, errors,
images, TLS, and worker processes on a shared Redis."""

from __future__ import annotations

import importlib.util
import io
import ssl
from pathlib import Path

import httpx
import pytest
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ReplicateError

from mock_server import cli
from tests.conftest import CHECKED, TOKEN, spawned_server
from tests.redis_server import RedisServer
from tests.test_live_clients import status_of
from tests.threads import bounded

DEADLINE_S = 20.0


def client(base_url: str) -> Client:
    return Client(
        api_token=TOKEN, base_url=base_url, timeout=httpx.Timeout(10.0), event_hooks=CHECKED
    )


def image_at(url: str, verify: ssl.SSLContext | bool = True) -> Image.Image:
    with httpx.Client(timeout=10, verify=verify) as http:
        response = http.get(url)
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_the_official_client_works_against_granian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.05")
    with spawned_server(
        "--server", "granian", "--time-scale", "0.02", log=tmp_path / "server.log"
    ) as (url, _):
        rc = client(url + "/replicate")
        # replicate.run sends Prefer: wait: the answer is the finished prediction.
        output = bounded(
            lambda: rc.run(
                "black-forest-labs/flux-schnell",
                input={"prompt": "a fox", "num_outputs": 2, "aspect_ratio": "16:9"},
                use_file_output=False,
            ),
            DEADLINE_S,
        )
        assert isinstance(output, list)
        assert len(output) == 2
        for item in output:
            image = image_at(str(item))
            assert (image.format, image.size) == ("WEBP", (1344, 768))
        # create, then poll to the end
        p = rc.predictions.create(
            model="black-forest-labs/flux-dev", input={"prompt": "a hill", "output_format": "png"}
        )
        assert status_of(p) == "starting"
        bounded(p.wait, DEADLINE_S)
        assert status_of(p) == "succeeded", p.error
        assert isinstance(p.output, list)
        assert image_at(str(p.output[0])).format == "PNG"
        assert p.id in [q.id for q in rc.predictions.list().results]
        # Server-Sent Events
        events = bounded(
            lambda: [
                e.event.value
                for e in rc.stream("black-forest-labs/flux-schnell", input={"prompt": "a"})
            ],
            DEADLINE_S,
        )
        assert events[-2:] == ["output", "done"]
        # an upload (multipart) and a validation error naming every field
        buffer = io.BytesIO()
        Image.new("RGB", (60, 90), "red").save(buffer, "PNG")
        buffer.seek(0)
        uploaded = rc.files.create(buffer, filename="portrait.png", content_type="image/png")
        assert uploaded.size == len(buffer.getvalue())
        with pytest.raises(ReplicateError) as refused:
            rc.predictions.create(
                model="black-forest-labs/flux-schnell",
                input={"prompt": 5, "aspect_ratio": "7:3", "num_outputs": 9},
            )
        assert refused.value.status == 422
        for name in ("prompt", "aspect_ratio", "num_outputs"):
            assert name in str(refused.value.detail)


def test_granian_serves_https_with_the_generated_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    args = ("--server", "granian", "--tls", "--tls-ca-file", str(ca), "--time-scale", "0")
    with spawned_server(*args, log=tmp_path / "server.log", scheme="https") as (url, _):
        trust = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=url, verify=trust, timeout=10) as http:
            created = http.post(
                "/v1/models/black-forest-labs/flux-schnell/predictions",
                json={"input": {"prompt": "x"}},
                headers={"Authorization": f"Bearer {TOKEN}", "Prefer": "wait"},
            )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["status"] == "succeeded"
        assert body["output"][0].startswith("https://")
        assert image_at(body["output"][0], verify=trust).size == (1024, 1024)


def test_granian_workers_share_a_redis_store(tmp_path: Path, redis_server: RedisServer) -> None:
    args = ("--server", "granian", "--workers", "2", "--store", redis_server.url)
    with spawned_server(*args, "--time-scale", "0", log=tmp_path / "server.log") as (url, _):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            ids = []
            for n in range(40):  # new connections: both workers take some
                with httpx.Client(base_url=url, headers=headers, timeout=10) as fresh:
                    r = fresh.post(
                        "/v1/models/black-forest-labs/flux-schnell/predictions",
                        json={"input": {"prompt": f"fox {n}"}},
                    )
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            assert len(set(ids)) == 40
            for prediction_id in ids:
                assert http.get(f"/v1/predictions/{prediction_id}").json()["status"] == "succeeded"


def test_without_granian_the_server_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "granian" else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert cli.main(["--server", "granian", "--port", "0"]) == 2
    assert "pip install 'replicate-flux-emulator[granian]'" in capsys.readouterr().err
