"""The predictions API end to end in-process: create, lifecycle by the manual clock, cancel,
list, isolation, auth, model/version metadata and output files."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import CHECKED, PREFIXES, TOKEN

ALPHABET = set("0123456789abcdefghjkmnpqrstvwxyz")
SCHNELL = "black-forest-labs/flux-schnell"
DEV = "black-forest-labs/flux-dev"
TQDM = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)", re.MULTILINE)
FIXTURES = Path(Settings().fixtures_dir) / "models"
CREATED = {"/replicate/v1": 200, "/v1": 201}  # CometAPI documents 200, Replicate answers 201


def create(
    client: TestClient, model: str = SCHNELL, prefix: str = "/v1", **inp: Any
) -> dict[str, Any]:
    r = client.post(
        f"{prefix}/models/{model}/predictions", json={"input": {"prompt": "a cat", **inp}}
    )
    assert r.status_code == CREATED[prefix], r.text
    body: dict[str, Any] = r.json()
    return body


def get(client: TestClient, prediction_id: str, prefix: str = "/v1") -> dict[str, Any]:
    r = client.get(f"{prefix}/predictions/{prediction_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def last_progress(logs: str) -> int:
    matches = TQDM.findall(logs)
    assert matches, logs
    return int(matches[-1][0])


def check_created(body: dict[str, Any], model: str, inp: dict[str, Any]) -> None:
    assert set(body) >= {"id", "model", "version", "input", "logs", "output", "urls", "metrics"}
    assert len(body["id"]) == 26
    assert set(body["id"]) <= ALPHABET
    assert body["model"] == model
    assert body["version"] == "hidden"
    assert body["input"] == inp
    assert body["logs"] == ""
    assert body["output"] is None
    assert body["data_removed"] is False
    assert body["error"] is None
    assert body["status"] == "starting"
    assert body["source"] == "api"
    assert body["created_at"].endswith("Z")
    assert body["started_at"] is None
    assert body["completed_at"] is None
    assert set(body["urls"]) == {"get", "cancel", "stream", "web"}
    for url in body["urls"].values():
        assert isinstance(url, str)
        assert url.startswith(("http://", "https://"))
    assert body["metrics"] == {}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_by_model_shape(client: TestClient, prefix: str) -> None:
    inp = {"prompt": "a cat", "aspect_ratio": "16:9", "not_in_schema": {"kept": [1, 2]}}
    r = client.post(f"{prefix}/models/{SCHNELL}/predictions", json={"input": inp})
    assert r.status_code == CREATED[prefix]
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    check_created(body, SCHNELL, inp)
    assert body["urls"]["get"].endswith(f"{prefix}/predictions/{body['id']}")
    assert body["urls"]["cancel"] == body["urls"]["get"] + "/cancel"
    assert r.headers["location"] == body["urls"]["get"]
    assert get(client, body["id"], prefix)["input"] == inp


@pytest.mark.parametrize(
    "encoded", ["black-forest-labs%2Fflux-schnell", "black-forest-labs%2fflux-schnell"]
)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_with_encoded_slash(client: TestClient, prefix: str, encoded: str) -> None:
    r = client.post(f"{prefix}/models/{encoded}/predictions", json={"input": {"prompt": "x"}})
    assert r.status_code == CREATED[prefix], r.text
    check_created(r.json(), SCHNELL, {"prompt": "x"})


def latest_version(client: TestClient, model: str = DEV) -> str:
    r = client.get(f"/v1/models/{model}")
    assert r.status_code == 200
    version: str = r.json()["latest_version"]["id"]
    assert re.fullmatch(r"[0-9a-f]{64}", version)
    return version


@pytest.mark.parametrize("form", ["name", "name:version", "version"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_by_version(client: TestClient, prefix: str, form: str) -> None:
    vid = latest_version(client)
    ref = {"name": DEV, "name:version": f"{DEV}:{vid}", "version": vid}[form]
    r = client.post(f"{prefix}/predictions", json={"version": ref, "input": {"prompt": "x"}})
    assert r.status_code == CREATED[prefix], r.text
    check_created(r.json(), DEV, {"prompt": "x"})


@pytest.mark.parametrize(
    "ref",
    [
        "black-forest-labs/flux-nope",
        f"{DEV}:{'0' * 64}",
        "0" * 64,
        "flux-dev",
    ],
)
def test_create_by_unknown_version(client: TestClient, ref: str) -> None:
    r = client.post("/v1/predictions", json={"version": ref, "input": {"prompt": "x"}})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Invalid version or not permitted"
    assert client.get("/v1/predictions").json()["results"] == []


def test_lifecycle_by_clock(client: TestClient, clock: ManualClock) -> None:
    p = create(client, DEV)
    assert get(client, p["id"])["status"] == "starting"
    clock.advance(1.0)
    running = get(client, p["id"])
    assert running["status"] == "processing"
    assert running["started_at"] is not None
    assert running["started_at"].endswith("Z")
    assert running["completed_at"] is None
    assert "Using seed:" in running["logs"]
    first = last_progress(running["logs"])
    clock.advance(1.0)
    later = get(client, p["id"])
    assert later["status"] == "processing"
    assert later["logs"].startswith(running["logs"].rstrip("\n").rsplit("\n", 1)[0])
    assert last_progress(later["logs"]) > first
    clock.advance(1.6)  # 3.6 s after create > 0.3 + 3.2
    done = get(client, p["id"])
    assert done["status"] == "succeeded"
    assert done["completed_at"] is not None
    assert last_progress(done["logs"]) == 100
    assert isinstance(done["output"], list)
    assert len(done["output"]) == 1
    assert all(u.startswith("http://testserver/") for u in done["output"])
    assert set(done["metrics"]) >= {"predict_time", "total_time", "image_count"}
    assert done["metrics"]["predict_time"] == pytest.approx(3.2)
    assert done["metrics"]["total_time"] == pytest.approx(3.5)
    assert done["metrics"]["image_count"] == 1


def test_pro_output_is_a_string(client: TestClient, clock: ManualClock) -> None:
    p = create(client, "black-forest-labs/flux-1.1-pro")
    clock.advance(10)
    done = get(client, p["id"])
    assert done["status"] == "succeeded"
    assert isinstance(done["output"], str)
    assert done["output"].startswith("http://testserver/")


def test_num_outputs_gives_that_many_urls(client: TestClient, clock: ManualClock) -> None:
    p = create(client, SCHNELL, num_outputs=3)
    clock.advance(5)
    done = get(client, p["id"])
    assert len(done["output"]) == 3
    assert len(set(done["output"])) == 3
    assert done["metrics"]["image_count"] == 3


@pytest.mark.parametrize("prefix", PREFIXES)
def test_cancel_running(client: TestClient, clock: ManualClock, prefix: str) -> None:
    p = create(client, DEV, prefix)
    clock.advance(1.0)
    r = client.post(f"{prefix}/predictions/{p['id']}/cancel")
    assert r.status_code == 200
    canceled = r.json()
    assert canceled["status"] == "canceled"
    assert canceled["completed_at"] is not None
    assert canceled["output"] is None
    clock.advance(60)
    later = get(client, p["id"], prefix)
    assert later["status"] == "canceled"
    assert later["completed_at"] == canceled["completed_at"]
    assert later["output"] is None
    assert client.get(f"/delivery/{p['id']}/out-0.webp").status_code == 404


def test_cancel_starting(client: TestClient, clock: ManualClock) -> None:
    p = create(client, DEV)
    r = client.post(f"/v1/predictions/{p['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "canceled"
    assert r.json()["started_at"] is None
    clock.advance(60)
    assert get(client, p["id"])["status"] == "canceled"


def test_cancel_succeeded_is_unchanged(client: TestClient, clock: ManualClock) -> None:
    p = create(client, SCHNELL)
    clock.advance(5)
    before = get(client, p["id"])
    assert before["status"] == "succeeded"
    r = client.post(f"/v1/predictions/{p['id']}/cancel")
    assert r.status_code == 200
    assert r.json() == before
    assert get(client, p["id"]) == before


def test_list_newest_first(client: TestClient) -> None:
    ids = [create(client, prompt=f"p{i}")["id"] for i in range(3)]
    page = client.get("/v1/predictions").json()
    assert [p["id"] for p in page["results"]] == ids[::-1]
    assert page["next"] is None
    assert page["previous"] is None


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_pagination(client: TestClient, prefix: str) -> None:
    ids = [create(client, prefix=prefix)["id"] for _ in range(205)]
    assert len(set(ids)) == 205  # identical requests still get distinct ids
    first = client.get(f"{prefix}/predictions").json()
    assert len(first["results"]) == 100
    assert first["previous"] is None
    assert first["next"].startswith(f"http://testserver{prefix}/predictions?")
    assert "cursor=" in first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 100
    third = client.get(second["next"]).json()
    assert len(third["results"]) == 5
    assert third["next"] is None
    seen = [p["id"] for page in (first, second, third) for p in page["results"]]
    assert seen == ids[::-1]
    assert second["previous"] is not None
    back = client.get(second["previous"]).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in first["results"]]


def created_at(client: TestClient, clock: ManualClock, hours: list[float]) -> list[dict[str, Any]]:
    """One prediction created at each offset (hours from now, increasing) of the manual clock."""
    start = clock.now()
    made = []
    for h in hours:
        clock.set(start + timedelta(hours=h))
        made.append(create(client, prompt=f"at {h}"))
    return made


def listed_ids(client: TestClient, prefix: str = "/v1", **params: str) -> list[str]:
    r = client.get(f"{prefix}/predictions", params=params)
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["results"]]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_created_after_is_inclusive_and_created_before_exclusive(
    client: TestClient, clock: ManualClock, prefix: str
) -> None:
    a, b, c = created_at(client, clock, [0, 1, 2])
    assert listed_ids(client, prefix, created_after=b["created_at"]) == [c["id"], b["id"]]
    assert listed_ids(client, prefix, created_before=b["created_at"]) == [a["id"]]
    window = {"created_after": a["created_at"], "created_before": c["created_at"]}
    assert listed_ids(client, prefix, **window) == [b["id"], a["id"]]
    assert (
        listed_ids(client, prefix, created_after=c["created_at"], created_before=a["created_at"])
        == []
    )


def test_list_window_accepts_offsets_as_the_official_client_sends_them(
    client: TestClient, clock: ManualClock
) -> None:
    """The Stainless client sends `datetime.isoformat()`: `+00:00`, or any other offset."""
    a, b = created_at(client, clock, [0, 1])
    instant = datetime.fromisoformat(b["created_at"].replace("Z", "+00:00"))
    forms = [
        instant.isoformat(),  # 2024-01-01T01:00:00+00:00
        instant.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
        instant.astimezone(timezone(timedelta(hours=-8))).isoformat(),
        b["created_at"].replace("T", "t").replace("Z", "z"),
    ]
    for form in forms:
        assert listed_ids(client, created_after=form) == [b["id"]], form
        assert listed_ids(client, created_before=form) == [a["id"]], form


def test_list_window_sub_microsecond_bounds(client: TestClient, clock: ManualClock) -> None:
    (a,) = created_at(client, clock, [0])
    at = a["created_at"].removesuffix("Z")
    assert listed_ids(client, created_after=f"{at}0001Z") == []  # a nanosecond later
    assert listed_ids(client, created_before=f"{at}0001Z") == [a["id"]]
    assert listed_ids(client, created_after=f"{at}000Z") == [a["id"]]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_pages_keep_the_window(client: TestClient, clock: ManualClock, prefix: str) -> None:
    start = clock.now()
    ids = []
    for i in range(260):
        clock.set(start + timedelta(seconds=i))
        ids.append(create(client, prefix=prefix)["id"])
    after = (start + timedelta(seconds=20)).isoformat()  # with `+00:00`
    before = (start + timedelta(seconds=240)).isoformat().replace("+00:00", "Z")
    wanted = ids[20:240][::-1]
    first = client.get(
        f"{prefix}/predictions", params={"created_after": after, "created_before": before}
    ).json()
    assert first["previous"] is None
    query = parse_qs(urlsplit(first["next"]).query)
    assert query["created_after"] == [after]
    assert query["created_before"] == [before]
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    assert third["next"] is None
    seen = [p["id"] for page in (first, second, third) for p in page["results"]]
    assert seen == wanted
    back = client.get(second["previous"]).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in first["results"]]
    assert parse_qs(urlsplit(back["next"]).query)["created_after"] == [after]
    assert back["previous"] is None


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2025-01-01",
        "2025-01-01T00:00:00",  # no offset
        "2025-01-01 00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-01-01T25:00:00Z",
        "2025-01-01T00:00:00+24:00",
        "1735689600",
        "",
    ],
)
def test_list_bad_window_is_400_naming_it(client: TestClient, name: str, value: str) -> None:
    r = client.get("/v1/predictions", params={name: value})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert name in r.json()["detail"]


@pytest.mark.parametrize("query", ["page=2", "limit=5&foo=bar", "source=web", "cursor2=b1"])
def test_list_ignores_unknown_query_parameters(client: TestClient, query: str) -> None:
    made = create(client)
    r = client.get(f"/v1/predictions?{query}")
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["results"]] == [made["id"]]


@pytest.mark.parametrize("cursor", ["!!!", "bm90LWEtY3Vyc29y", "Yjow", "YTotMQ", "é"])
def test_list_bad_cursor(client: TestClient, cursor: str) -> None:
    r = client.get("/v1/predictions", params={"cursor": cursor})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


def test_isolation_between_tokens(client: TestClient) -> None:
    mine = create(client)
    other = {"Authorization": "Bearer r8_someone_else"}
    assert client.get(f"/v1/predictions/{mine['id']}", headers=other).status_code == 404
    assert client.post(f"/v1/predictions/{mine['id']}/cancel", headers=other).status_code == 404
    r = client.post(
        f"/v1/models/{SCHNELL}/predictions", json={"input": {"prompt": "a cat"}}, headers=other
    )
    theirs = r.json()
    assert theirs["id"] != mine["id"]
    listed = client.get("/v1/predictions", headers=other).json()["results"]
    assert [p["id"] for p in listed] == [theirs["id"]]
    assert [p["id"] for p in client.get("/v1/predictions").json()["results"]] == [mine["id"]]
    assert get(client, mine["id"])["status"] == "starting"  # B's cancel did nothing


def problem(r: Any, status: int, detail: str) -> None:
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"title": "Unauthenticated", "detail": detail, "status": status}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v1/models/{SCHNELL}/predictions"),
        ("GET", "/v1/predictions"),
        ("GET", "/replicate/v1/predictions"),
        ("GET", f"/v1/models/{SCHNELL}"),
    ],
)
def test_auth_missing_and_invalid(app: Starlette, method: str, path: str) -> None:
    with TestClient(app) as anon:
        anon.event_hooks = CHECKED
        body = {"input": {"prompt": "x"}}
        r = anon.request(method, path, json=body if method == "POST" else None)
        problem(r, 401, "You did not pass an authentication token")
        basic = {"Authorization": "Basic x"}
        r = anon.request(method, path, json=body if method == "POST" else None, headers=basic)
        problem(r, 401, "You did not pass a valid authentication token")


def test_auth_token_list() -> None:
    app = create_app(Settings(api_tokens=("good",)), clock=ManualClock())
    with TestClient(app) as c:
        c.event_hooks = CHECKED
        ok = c.post(
            f"/v1/models/{SCHNELL}/predictions",
            json={"input": {"prompt": "x"}},
            headers={"Authorization": "Bearer good"},
        )
        assert ok.status_code == 201
        bad = c.get("/v1/predictions", headers={"Authorization": "Bearer bad"})
        problem(bad, 401, "You did not pass a valid authentication token")
        default = c.get("/v1/predictions", headers={"Authorization": f"Bearer {TOKEN}"})
        problem(default, 401, "You did not pass a valid authentication token")


@pytest.mark.parametrize("name", ["flux-schnell", "flux-dev", "flux-1.1-pro-ultra", "flux-2-flex"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_model_and_version(client: TestClient, prefix: str, name: str) -> None:
    fixture = yaml.safe_load((FIXTURES / "black-forest-labs" / f"{name}.yaml").read_text())
    r = client.get(f"{prefix}/models/black-forest-labs/{name}")
    assert r.status_code == 200
    model = r.json()
    assert model["owner"] == "black-forest-labs"
    assert model["name"] == name
    assert isinstance(model["run_count"], int)
    version = model["latest_version"]
    schema = version["openapi_schema"]["components"]["schemas"]["Input"]
    assert schema["properties"] == fixture["input_schema"]["properties"]
    assert schema["required"] == ["prompt"]
    if name == "flux-schnell":
        assert schema["properties"]["num_outputs"]["maximum"] == 4
    r = client.get(f"{prefix}/models/black-forest-labs/{name}/versions/{version['id']}")
    assert r.status_code == 200
    assert r.json() == version
    wrong = client.get(f"{prefix}/models/black-forest-labs/{name}/versions/{'0' * 64}")
    assert wrong.status_code == 404


def test_unknown_model(client: TestClient) -> None:
    for path in ("/v1/models/black-forest-labs/flux-9", "/v1/models/someone/flux-dev"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("fmt", "pil"), [("webp", "WEBP"), ("png", "PNG"), ("jpg", "JPEG")])
def test_output_file(
    app: Starlette, client: TestClient, clock: ManualClock, fmt: str, pil: str
) -> None:
    p = create(client, SCHNELL, aspect_ratio="3:2", output_format=fmt)
    early = client.get(f"/delivery/{p['id']}/out-0.{fmt}")
    assert early.status_code == 404
    assert early.headers["content-type"] == "application/problem+json"
    clock.advance(5)
    url = get(client, p["id"])["output"][0]
    assert url.endswith(f"/out-0.{fmt}")
    with TestClient(app) as anon:
        anon.event_hooks = CHECKED
        for c in (client, anon):
            r = c.get(urlsplit(url).path)
            assert r.status_code == 200
            img = Image.open(io.BytesIO(r.content))
            assert img.size == (1216, 832)
            assert img.format == pil
    other = "png" if fmt != "png" else "jpg"
    assert client.get(f"/delivery/{p['id']}/out-0.{other}").status_code == 404
    assert client.get(f"/delivery/{p['id']}/out-1.{fmt}").status_code == 404
