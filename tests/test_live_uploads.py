"""The official clients upload file inputs to a real uvicorn server (POST /v1/files), and the
output takes the uploaded image's proportions: Python 1.x with `open(...)` and a `Path`, npm with
a Buffer and a Blob. Both base URLs each."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ReplicateError

from tests.conftest import CHECKED, LiveServer
from tests.test_official_clients import node_modules, node_script, run_node
from tests.threads import bounded

__all__ = ["node_modules"]  # the npm client's fixture, shared with tests/test_official_clients.py

DEADLINE_S = 30.0
PORTRAIT = (600, 900)  # 2:3
KONTEXT_2_3 = (832, 1248)  # flux-kontext-pro for a 2:3 image: about 1 MP, multiples of 32
FLUX2_2_3 = (832, 1248)  # flux-2-pro, 1 MP, multiples of 16
PY_BASES = {"comet": "/replicate", "replicate": ""}
NPM_BASES = {"comet": "/replicate/v1", "replicate": "/v1"}


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    path = tmp_path / "portrait.png"
    Image.new("RGB", PORTRAIT, (180, 90, 40)).save(path)
    return path


def image_size(url: str) -> tuple[int, int]:
    with httpx.Client(event_hooks=CHECKED, timeout=10) as http:
        response = http.get(url)
    assert response.status_code == 200, url
    with Image.open(io.BytesIO(response.content)) as image:
        return image.size


def uploads(live: LiveServer, prefix: str) -> list[dict[str, Any]]:
    """POST <prefix>/files requests the server saw (its admin journal)."""
    query = {"path": f"{prefix}/files", "method": "POST", "limit": "1000"}
    response = httpx.get(f"{live.url}/__admin/requests", params=query, timeout=10)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return [e for e in entries if e["path"] == f"{prefix}/files"]


@pytest.mark.parametrize("base", sorted(PY_BASES))
def test_python_client_uploads_an_open_file_and_the_output_follows_it(
    live_server: LiveServer, portrait: Path, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.05")
    token = f"r8_live_upload_{base}"
    client = Client(
        api_token=token,
        base_url=live_server.url + PY_BASES[base],
        timeout=httpx.Timeout(10.0),
        event_hooks=CHECKED,
    )
    before = len(uploads(live_server, f"{PY_BASES[base]}/v1"))
    with portrait.open("rb") as f:
        output = bounded(
            lambda: client.run(
                "black-forest-labs/flux-kontext-pro", input={"prompt": "x", "input_image": f}
            ),
            DEADLINE_S,
        )
    assert isinstance(output, str), output  # http:// outputs stay plain strings
    assert image_size(output) == KONTEXT_2_3
    assert len(uploads(live_server, f"{PY_BASES[base]}/v1")) == before + 1

    # A Path works the same way (the client opens and uploads it).
    output = bounded(
        lambda: client.run(
            "black-forest-labs/flux-dev", input={"prompt": "x", "image": portrait, "num_outputs": 1}
        ),
        DEADLINE_S,
    )
    assert isinstance(output, list), output
    assert image_size(output[0]) == (608, 896)  # cog-flux img2img: the input's size, in 16s

    files = bounded(client.files.list, DEADLINE_S)
    assert [(f.name, f.content_type, f.size) for f in files] == [
        ("portrait.png", "image/png", portrait.stat().st_size)
    ] * 2
    assert files[0].urls["get"].startswith(f"{live_server.url}{PY_BASES[base]}/v1/files/")


@pytest.mark.parametrize("base", sorted(PY_BASES))
def test_python_client_runs_kontext_with_a_data_uri_and_the_output_follows_it(
    live_server: LiveServer, portrait: Path, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `data:` URI input goes as it is (nothing uploaded) and drives the output's proportions
    as an uploaded file does."""
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.05")
    client = Client(
        api_token=f"r8_live_data_uri_{base}",
        base_url=live_server.url + PY_BASES[base],
        timeout=httpx.Timeout(10.0),
        event_hooks=CHECKED,
    )
    data_uri = "data:image/png;base64," + base64.b64encode(portrait.read_bytes()).decode()
    before = len(uploads(live_server, f"{PY_BASES[base]}/v1"))
    output = bounded(
        lambda: client.run(
            "black-forest-labs/flux-kontext-pro",
            input={
                "prompt": "x",
                "input_image": data_uri,
                "aspect_ratio": "match_input_image",
            },
        ),
        DEADLINE_S,
    )
    assert isinstance(output, str), output
    assert image_size(output) == KONTEXT_2_3
    assert len(uploads(live_server, f"{PY_BASES[base]}/v1")) == before


def test_python_client_files_api(live_server: LiveServer, portrait: Path) -> None:
    client = Client(
        api_token="r8_live_files_api",
        base_url=live_server.url,
        timeout=httpx.Timeout(10.0),
        event_hooks=CHECKED,
    )
    created = bounded(lambda: client.files.create(portrait, metadata={"case": 7}), DEADLINE_S)
    assert (created.name, created.content_type, created.metadata) == (
        "portrait.png",
        "image/png",
        {"case": 7},
    )
    assert created.checksums["sha256"] == created.checksums["sha256"].lower()
    got = bounded(lambda: client.files.get(created.id), DEADLINE_S)
    assert (got.id, got.etag, got.size, got.urls) == (
        created.id,
        created.etag,
        created.size,
        created.urls,
    )
    assert bounded(lambda: client.files.delete(created.id), DEADLINE_S) is True
    with pytest.raises(ReplicateError) as info:
        bounded(lambda: client.files.get(created.id), DEADLINE_S)
    assert info.value.status == 404


def test_python_client_sees_413_past_max_file_bytes(live_server: LiveServer) -> None:
    """Over real HTTP the server reads the rest of the body, so the client reads the 413."""
    client = Client(api_token="r8_live_big", base_url=live_server.url, timeout=httpx.Timeout(30.0))
    big = io.BytesIO(b"\0" * (10 * 1024 * 1024 + 1))
    big.name = "big.bin"
    with pytest.raises(ReplicateError) as info:
        bounded(lambda: client.files.create(big), DEADLINE_S)
    assert info.value.status == 413
    assert "--max-file-bytes" in (info.value.detail or "")


@pytest.mark.parametrize("base", sorted(NPM_BASES))
def test_npm_client_uploads_a_buffer_and_a_blob(
    node_modules: Path, live_server: LiveServer, portrait: Path, tmp_path: Path, base: str
) -> None:
    script = node_script("files.mjs", node_modules, tmp_path / "project")
    config = {
        "baseUrl": live_server.url + NPM_BASES[base],
        "token": f"r8_npm_files_{base}",
        "portrait": str(portrait),
    }
    results = run_node(script, config)
    failures = {name: r["error"] for name, r in results.items() if "error" in r}
    assert not failures, failures

    buffer_output = results["run_with_buffer"]["ok"]
    assert isinstance(buffer_output, str), buffer_output
    assert image_size(buffer_output) == KONTEXT_2_3
    blob_output = results["run_with_blob"]["ok"]
    assert image_size(blob_output) == FLUX2_2_3

    listed = results["uploads_listed"]["ok"]
    (buffer_file,) = listed["buffer"]
    assert buffer_file["name"].startswith("buffer_")
    assert buffer_file["content_type"] == "application/octet-stream"
    assert buffer_file["size"] == portrait.stat().st_size
    assert buffer_file["urls"]["get"].startswith(f"{live_server.url}{NPM_BASES[base]}/files/")
    (blob_file,) = listed["blob"]
    assert blob_file["name"].startswith("blob_")
    assert blob_file["metadata"] == {}

    api = results["files_api"]["ok"]
    assert api["created"]["metadata"] == {"purpose": "npm test"}
    assert api["got"] == api["created"]
    assert api["listed"] == [api["created"]["id"]]
    assert api["deleted"] is True
    assert api["after"] == 404
