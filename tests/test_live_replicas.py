"""The README's deployment, run as written: two replicas on one redis-server behind nginx with
examples/nginx-replicas.conf (its ports and paths moved to free ones), driven through nginx."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUTH, PROJECT, nginx_binary, spawned_server, wait_listening
from tests.redis_server import RedisServer, free_port

DEADLINE_S = 20.0
CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"


def nginx_config(folder: Path, listen: int, upstreams: list[int]) -> Path:
    """examples/nginx-replicas.conf with its ports and files moved into `folder`."""
    text = (PROJECT / "examples" / "nginx-replicas.conf").read_text()
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{listen}")
    text = text.replace("127.0.0.1:8001", f"127.0.0.1:{upstreams[0]}")
    text = text.replace("127.0.0.1:8002", f"127.0.0.1:{upstreams[1]}")
    text = text.replace("/tmp/mock-server-nginx", str(folder / "nginx"))
    assert str(folder) in text  # every path moved
    config = folder / "nginx.conf"
    config.write_text(text)
    return config


@pytest.fixture
def balancer(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[str, list[str]]]:
    """nginx on a free port in front of two replicas; yields its URL and the replicas' URLs."""
    listen = free_port()
    with (
        spawned_server(
            "--store", redis_server.url, "--time-scale", "0.02", log=tmp_path / "a.log"
        ) as (a, _),
        spawned_server(
            "--store", redis_server.url, "--time-scale", "0.02", log=tmp_path / "b.log"
        ) as (b, _),
    ):
        ports = [int(a.rsplit(":", 1)[1]), int(b.rsplit(":", 1)[1])]
        config = nginx_config(tmp_path, listen, ports)
        proc = subprocess.Popen(
            [nginx_binary(), "-c", str(config), "-p", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "nginx.log").open("w"),
        )
        try:
            wait_listening(listen, proc, tmp_path / "nginx.log")
            yield f"http://127.0.0.1:{listen}", [a, b]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_two_replicas_behind_nginx_serve_every_prediction(
    balancer: tuple[str, list[str]],
) -> None:
    url, replicas = balancer
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as client:
        ids = []
        for n in range(6):  # round-robin: creates land on both replicas
            r = client.post(CREATE, json={"input": {"prompt": f"lb {n}"}})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + DEADLINE_S
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for pid in sorted(pending):
                r = client.get(f"/v1/predictions/{pid}")  # any replica answers
                assert r.status_code == 200, r.text
                if r.json()["status"] == "succeeded":
                    image = client.get(r.json()["output"][0])
                    assert image.status_code == 200
                    assert image.headers["content-type"] == "image/webp"
                    pending.discard(pid)
        assert not pending, f"not succeeded within {DEADLINE_S} s: {pending}"
        listed = client.get("/v1/predictions").json()["results"]
        assert {p["id"] for p in listed} == set(ids)
    # Each replica sees all of them directly too.
    for replica in replicas:
        with httpx.Client(base_url=replica, headers=AUTH, timeout=10) as direct:
            assert {p["id"] for p in direct.get("/v1/predictions").json()["results"]} == set(ids)
