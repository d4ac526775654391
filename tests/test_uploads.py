"""The Files API in-process: the store, upload/list/get/download/delete under both prefixes,
per-token isolation, expiry, the limits, and every error an upload can get."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.redis_store.connection import Keys, connect
from mock_server.redis_store.files import RedisFileStore
from mock_server.uploads import (
    LIFETIME,
    FileStore,
    MemoryFileStore,
    StoredFile,
    digests,
    file_id,
)
from tests.conftest import AUTH, CHECKED, PREFIXES
from tests.redis_server import RedisServer

START = datetime(2024, 1, 1, tzinfo=UTC)
FILE_ID = re.compile(r"^[a-z2-7]{26}$")


def png(width: int = 600, height: int = 900) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def upload(
    client: TestClient,
    content: bytes = b"hello",
    *,
    prefix: str = "/v1",
    filename: str = "hello.txt",
    content_type: str = "text/plain",
    data: dict[str, str] | None = None,
    status: int = 201,
    **headers: str,
) -> dict[str, Any]:
    r = client.post(
        f"{prefix}/files",
        files={"content": (filename, content, content_type)},
        data=data or {},
        headers=headers,
    )
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def stored(owner: str = "o", content: bytes = b"x", seq_id: str = "a" * 26) -> StoredFile:
    sha256, md5 = digests(content)
    return StoredFile(seq_id, owner, "f", "text/plain", content, {}, START, sha256, md5)


# ----------------------------------------------------------------------------- the store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[FileStore]:
    """A fresh file store of each kind (Redis: a real redis-server started for the test)."""
    if request.param == "memory":
        yield MemoryFileStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = connect(server.url, 5.0)
    yield RedisFileStore(client, server.url, Keys())
    await client.aclose()


@pytest.mark.anyio
async def test_store_pages_newest_first_per_owner(store: FileStore) -> None:
    for i in range(5):
        await store.add(stored("a", seq_id=f"a{i}"))
        await store.add(stored("b", seq_id=f"b{i}"))
    first = await store.page("a", limit=2)
    assert [f.id for f in first.results] == ["a4", "a3"]
    assert first.previous_after is None
    assert first.next_before is not None
    second = await store.page("a", before=first.next_before, limit=2)
    assert [f.id for f in second.results] == ["a2", "a1"]
    back = await store.page("a", after=second.previous_after, limit=2)
    assert [f.id for f in back.results] == ["a4", "a3"]
    assert await store.count("a") == await store.count("b") == 5


@pytest.mark.anyio
async def test_store_isolates_owners_and_deletes(store: FileStore) -> None:
    await store.add(stored("a", seq_id="x"))
    assert await store.get("b", "x") is None
    assert not await store.delete("b", "x")
    assert await store.get("a", "x") is not None
    assert await store.delete("a", "x")
    assert await store.get("a", "x") is None
    assert await store.count("a") == 0
    assert (await store.page("a")).results == []


@pytest.mark.anyio
async def test_store_purges_expired_files_and_resets(store: FileStore) -> None:
    await store.add(stored("a", seq_id="old"))
    later = StoredFile("new", "a", "f", "t/p", b"", {}, START + timedelta(hours=1), "", "")
    await store.add(later)
    await store.purge("a", START + LIFETIME)
    assert [f.id for f in (await store.page("a")).results] == ["new"]
    assert await store.next_occurrence("k") == 0
    assert await store.next_occurrence("k") == 1
    await store.reset()
    assert await store.count("a") == 0
    assert await store.next_occurrence("k") == 0


def test_file_ids_are_derived_and_look_like_replicates() -> None:
    one = file_id(0, "owner", "sha", 0)
    assert FILE_ID.match(one)
    assert one == file_id(0, "owner", "sha", 0)
    assert len({one, file_id(1, "owner", "sha", 0), file_id(0, "x", "sha", 0)}) == 3
    assert file_id(0, "owner", "sha", 1) != one


# ----------------------------------------------------------------------------- the API


@pytest.mark.parametrize("prefix", PREFIXES)
def test_upload_get_download_delete(client: TestClient, prefix: str) -> None:
    body = upload(client, b"hello", prefix=prefix, data={"metadata": '{"ref": 7}'})
    assert set(body) == {
        "id",
        "name",
        "content_type",
        "size",
        "etag",
        "checksums",
        "metadata",
        "created_at",
        "expires_at",
        "urls",
    }
    assert FILE_ID.match(body["id"])
    assert body["name"] == "hello.txt"
    assert body["content_type"] == "text/plain"
    assert body["size"] == 5
    assert body["etag"] == hashlib.md5(b"hello").hexdigest()
    assert body["checksums"] == {
        "sha256": hashlib.sha256(b"hello").hexdigest(),
        "md5": hashlib.md5(b"hello").hexdigest(),
    }
    assert body["metadata"] == {"ref": 7}
    assert body["created_at"] == "2024-01-01T00:00:00.000Z"
    assert body["expires_at"] == "2024-01-02T00:00:00.000Z"
    url = f"http://testserver{prefix}/files/{body['id']}"
    assert body["urls"] == {"get": url}

    assert client.get(url).json() == body
    download = client.get(f"{url}/download")
    assert download.status_code == 200
    assert download.content == b"hello"
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["etag"] == f'"{body["etag"]}"'
    assert "hello.txt" in download.headers["content-disposition"]

    deleted = client.delete(url)
    assert deleted.status_code == 204
    assert deleted.content == b""
    for response in (client.get(url), client.get(f"{url}/download"), client.delete(url)):
        assert response.status_code == 404
        assert response.json()["detail"] == "The requested resource could not be found."


def test_download_keeps_binary_content_and_its_type(client: TestClient) -> None:
    image = png()
    body = upload(client, image, filename="p.png", content_type="image/png")
    download = client.get(f"/v1/files/{body['id']}/download?expiry=1&owner=me&signature=x")
    assert download.content == image
    assert download.headers["content-type"] == "image/png"


def test_the_same_content_gets_stable_new_ids(client: TestClient) -> None:
    first = upload(client, b"same")["id"]
    second = upload(client, b"same")["id"]
    assert first != second
    client.post("/__admin/reset")
    assert upload(client, b"same")["id"] == first


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_is_the_callers_files_newest_first(client: TestClient, prefix: str) -> None:
    ids = [upload(client, f"f{i}".encode(), prefix=prefix)["id"] for i in range(3)]
    other = upload(client, b"theirs", prefix=prefix, Authorization="Bearer someone-else")["id"]
    page = client.get(f"{prefix}/files").json()
    assert [f["id"] for f in page["results"]] == ids[::-1]
    assert page["next"] is None
    assert page["previous"] is None
    assert all(f["urls"]["get"].startswith(f"http://testserver{prefix}/") for f in page["results"])
    theirs = client.get(f"{prefix}/files", headers={"Authorization": "Bearer someone-else"})
    assert [f["id"] for f in theirs.json()["results"]] == [other]


def test_each_prefix_keeps_its_own_files(client: TestClient) -> None:
    """CometAPI and Replicate are separate services: an upload to one is not seen by the other."""
    comet = upload(client, b"same", prefix="/replicate/v1")
    replicate = upload(client, b"same", prefix="/v1")
    assert comet["id"] != replicate["id"]
    assert [f["id"] for f in client.get("/replicate/v1/files").json()["results"]] == [comet["id"]]
    assert [f["id"] for f in client.get("/v1/files").json()["results"]] == [replicate["id"]]
    assert client.get(f"/v1/files/{comet['id']}").status_code == 404
    assert client.delete(f"/replicate/v1/files/{replicate['id']}").status_code == 404
    assert client.get(f"/v1/files/{replicate['id']}").status_code == 200


def test_list_pages_by_100_with_absolute_links() -> None:
    app = create_app(Settings(max_files=250), clock=ManualClock())
    with TestClient(app) as client:
        client.headers.update(AUTH)
        client.event_hooks = CHECKED
        ids = [upload(client, str(i).encode(), prefix="/replicate/v1")["id"] for i in range(150)]
        first = client.get("/replicate/v1/files").json()
        assert [f["id"] for f in first["results"]] == ids[::-1][:100]
        assert first["next"].startswith("http://testserver/replicate/v1/files?cursor=b")
        second = client.get(first["next"]).json()
        assert [f["id"] for f in second["results"]] == ids[::-1][100:]
        assert second["next"] is None
        back = client.get(second["previous"]).json()
        assert [f["id"] for f in back["results"]] == ids[::-1][:100]
        assert client.get("/v1/files").json()["results"] == []  # uploaded under the other prefix
        assert client.get("/v1/files?cursor=zz").status_code == 400


def test_a_token_never_sees_another_tokens_files(client: TestClient) -> None:
    body = upload(client, b"mine")
    other = {"Authorization": "Bearer not-the-owner"}
    url = f"/v1/files/{body['id']}"
    for response in (
        client.get(url, headers=other),
        client.get(f"{url}/download", headers=other),
        client.delete(url, headers=other),
    ):
        assert response.status_code == 404
    assert client.get(url).status_code == 200  # the delete above did nothing


def test_files_need_a_token(client: TestClient) -> None:
    no_token = {"Authorization": ""}
    assert client.get("/v1/files", headers=no_token).status_code == 401
    r = client.post("/v1/files", files={"content": ("a", b"1")}, headers=no_token)
    assert r.status_code == 401
    assert r.json()["title"] == "Unauthenticated"


def test_files_expire_after_24_hours(client: TestClient, clock: ManualClock) -> None:
    body = upload(client, b"short-lived")
    url = f"/v1/files/{body['id']}"
    clock.advance(LIFETIME.total_seconds() - 1)
    assert client.get(url).status_code == 200
    clock.advance(1)
    assert client.get(url).status_code == 404
    assert client.get("/v1/files").json()["results"] == []


def test_reset_forgets_every_file(client: TestClient) -> None:
    body = upload(client, b"x")
    assert client.post("/__admin/reset").status_code == 200
    assert client.get(f"/v1/files/{body['id']}").status_code == 404
    assert client.get("/v1/files").json()["results"] == []


# ----------------------------------------------------------------------------- what clients send


def test_the_python_1x_form(client: TestClient) -> None:
    """replicate 1.x: `content` (filename, guessed type) and `metadata` as a text field."""
    body = upload(
        client, png(), filename="portrait.png", content_type="image/png", data={"metadata": "{}"}
    )
    assert (body["name"], body["content_type"], body["metadata"]) == (
        "portrait.png",
        "image/png",
        {},
    )


def test_the_npm_form_with_a_json_blob_for_metadata(client: TestClient) -> None:
    """npm: `content` (buffer_<ms>, application/octet-stream) and `metadata` as a JSON Blob part."""
    r = client.post(
        "/v1/files",
        files=[
            ("content", ("buffer_1700000000000", png(), "application/octet-stream")),
            ("metadata", ("blob", b'{"from": "npm"}', "application/json")),
        ],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "buffer_1700000000000"
    assert body["content_type"] == "application/octet-stream"
    assert body["metadata"] == {"from": "npm"}


def test_the_stainless_form_with_filename_and_type_fields(client: TestClient) -> None:
    body = upload(
        client,
        b"%PDF",
        filename="upload",
        content_type="application/octet-stream",
        data={"filename": "report.pdf", "type": "application/pdf"},
    )
    assert (body["name"], body["content_type"]) == ("report.pdf", "application/pdf")


def test_defaults_without_a_filename_or_type(client: TestClient) -> None:
    r = client.post(
        "/v1/files",
        content=b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nraw\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["content_type"], body["size"]) == (
        "file",
        "application/octet-stream",
        3,
    )


# ----------------------------------------------------------------------------- limits and errors


@pytest.fixture
def limited() -> Iterator[TestClient]:
    app = create_app(Settings(max_file_bytes=1000, max_files=2), clock=ManualClock())
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(AUTH)
        c.event_hooks = CHECKED
        yield c


def test_a_file_over_max_file_bytes_is_413(limited: TestClient) -> None:
    assert upload(limited, b"x" * 1000)["size"] == 1000
    r = limited.post("/v1/files", files={"content": ("big", b"x" * 1001)})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert "--max-file-bytes" in r.json()["detail"]
    assert "1000 bytes" in r.json()["detail"]


def test_a_declared_body_far_over_the_limit_is_413_before_reading(limited: TestClient) -> None:
    r = limited.post(
        "/v1/files",
        content=b"x" * (3 * 1024 * 1024),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413


def test_max_files_per_token_is_409_naming_the_limit(limited: TestClient) -> None:
    upload(limited, b"1")
    upload(limited, b"2")
    r = limited.post("/v1/files", files={"content": ("3", b"3")})
    assert r.status_code == 409
    assert r.json()["title"] == "Too many files"
    assert "--max-files" in r.json()["detail"]
    assert "2 files" in r.json()["detail"]
    upload(limited, b"other", Authorization="Bearer another-token")  # a limit per token
    first = limited.get("/v1/files").json()["results"][0]["id"]
    assert limited.delete(f"/v1/files/{first}").status_code == 204
    upload(limited, b"3")  # room again


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        pytest.param(
            {"json": {"content": "x"}}, 415, "multipart/form-data, not application/json", id="json"
        ),
        pytest.param({"content": b"x"}, 415, "not none", id="no-content-type"),
        pytest.param(
            {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "no boundary",
            id="no-boundary",
        ),
        pytest.param(
            {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=b"}},
            400,
            "not valid multipart/form-data",
            id="not-multipart",
        ),
        pytest.param(
            {
                "content": b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
            "has no name",
            id="part-without-name",
        ),
        pytest.param(
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nx',
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
            "closing boundary",
            id="truncated",
        ),
        pytest.param(
            {"files": [(f"f{i}", ("n", b"1")) for i in range(65)]},
            400,
            "more than 64 parts",
            id="parts",
        ),
        pytest.param(
            {"files": {"content": ("a", b"1")}, "data": {"metadata": "x" * (1024 * 1024 + 1)}},
            413,
            "`metadata`",
            id="field-too-large",
        ),
    ],
)
def test_a_bad_upload_body_is_a_4xx_that_says_why(
    client: TestClient, kwargs: dict[str, Any], status: int, detail: str
) -> None:
    r = client.post("/v1/files", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("data", "files", "field", "kind"),
    [
        pytest.param({}, {"other": ("a", b"1")}, "content", "required", id="no-content"),
        pytest.param({"metadata": "{nope"}, None, "metadata", "invalid_json", id="metadata-json"),
        pytest.param({"metadata": "[" * 100 + "]" * 100}, None, "metadata", "invalid", id="deep"),
        pytest.param({"filename": "n" * 256}, None, "filename", "string_lte", id="filename-long"),
    ],
)
def test_a_bad_form_field_is_422_naming_it(
    client: TestClient,
    data: dict[str, str],
    files: dict[str, Any] | None,
    field: str,
    kind: str,
) -> None:
    r = client.post(
        "/v1/files", data=data, files=files or {"content": ("a.txt", b"1", "text/plain")}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["title"] == "Input validation failed"
    assert [(f["field"], f["type"]) for f in body["invalid_fields"]] == [(field, kind)]
    assert body["detail"].startswith(f"- {field}: ")


def test_deeply_nested_metadata_is_422_not_500(client: TestClient) -> None:
    deep = '{"a":' * 100 + "1" + "}" * 100
    r = client.post("/v1/files", data={"metadata": deep}, files={"content": ("a", b"1")})
    assert r.status_code == 422
    assert r.json()["invalid_fields"][0]["field"] == "metadata"


def test_a_filename_that_is_not_utf8_is_422(client: TestClient) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="filename"\r\n\r\n\xff\xfe\r\n'
        b'--b\r\nContent-Disposition: form-data; name="content"; filename="a"\r\n\r\n1\r\n--b--\r\n'
    )
    r = client.post(
        "/v1/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert r.status_code == 422
    assert r.json()["invalid_fields"][0] == {
        "type": "invalid_utf8",
        "field": "filename",
        "description": "filename must be valid UTF-8",
    }


def test_metadata_is_any_json_and_a_type_is_kept_as_given(client: TestClient) -> None:
    """Replicate: metadata "must be valid JSON"; the clients send an object."""
    body = upload(client, b"x", data={"metadata": "[1, 2]", "type": "not a type"})
    assert body["metadata"] == [1, 2]
    assert body["content_type"] == "not a type"
    download = client.get(f"/v1/files/{body['id']}/download")
    assert download.headers["content-type"] == "application/octet-stream"
    empty_type = upload(client, b"y", content_type="image/png", data={"type": ""})
    assert empty_type["content_type"] == "image/png"  # an empty field counts as absent
    assert upload(client, b"z", data={"metadata": ""})["metadata"] == {}
