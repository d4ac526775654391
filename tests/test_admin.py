"""The admin API (/__admin): health, reset, clock, request journal, scenarios, predictions across
tokens, forcing a prediction's end, and `--admin-token`. In process, on the manual clock."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH, CHECKED, TOKEN, create
from tests.records import prediction

DEV = "/v1/models/black-forest-labs/flux-dev/predictions"  # 0.3 s set-up + 3.2 s
SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"  # 0.2 s + 0.83 s
REDACTED = re.compile(r"^sha256:[0-9a-f]{12}$")
BUILTINS = {
    "fail",
    "nsfw",
    "cancel",
    "slow",
    "instant",
    "rate-limit",
    "server-error",
    "unavailable",
    "latency",
}


def checked_client(app: Starlette, **headers: str) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False, headers=headers)
    client.event_hooks = CHECKED
    return client


def journal(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/__admin/requests", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


# ----------------------------------------------------------------------------- health


def test_health(client: TestClient, clock: ManualClock) -> None:
    create(client)
    health = client.get("/__admin/health").json()
    assert health["status"] == "ok"
    assert health["predictions"] == 1
    assert health["seed"] == 0
    assert health["time_scale"] == 1.0
    # The mode follows the injected clock (a ManualClock).
    assert health["clock"] == {"mode": "manual", "now": "2024-01-01T00:00:00.000000Z"}


def test_admin_api_is_open_without_admin_token(app: Starlette) -> None:
    with checked_client(app) as anonymous:  # no Authorization header at all
        assert anonymous.get("/__admin/health").status_code == 200


# ----------------------------------------------------------------------------- reset


def test_reset_empties_predictions_journal_and_runtime_scenarios(client: TestClient) -> None:
    created = create(client)
    assert client.post("/__admin/scenarios", json={"name": "mine"}).status_code == 201
    assert client.delete("/__admin/scenarios/fail").status_code == 204
    assert journal(client)

    response = client.post("/__admin/reset")
    assert response.status_code == 200
    assert response.json()["status"] == "reset"

    assert client.get("/__admin/health").json()["predictions"] == 0
    assert client.get("/v1/predictions").json()["results"] == []
    assert client.get(created["urls"]["get"]).status_code == 404
    assert client.get("/__admin/predictions").json() == {"predictions": []}
    # The journal was emptied by the reset: only what came after it is there.
    assert [e["path"] for e in journal(client)] == [
        f"/v1/predictions/{created['id']}",
        "/v1/predictions",
    ]
    names = {s["name"] for s in client.get("/__admin/scenarios").json()["scenarios"]}
    assert "mine" not in names
    assert names >= BUILTINS  # a removed built-in comes back


def test_reset_restarts_ids_and_can_change_the_seed(client: TestClient) -> None:
    first = create(client)["id"]
    assert client.post("/__admin/reset").json()["seed"] == 0
    assert create(client)["id"] == first  # ids restart: the same requests give the same ids
    response = client.post("/__admin/reset", json={"seed": 7})
    assert response.json()["seed"] == 7
    assert client.get("/__admin/health").json()["seed"] == 7
    seeded = create(client)["id"]
    assert seeded != first
    client.post("/__admin/reset", json={"seed": 7})
    assert create(client)["id"] == seeded
    # JSON Schema's `integer` includes 7.0 (found by schemathesis: it was refused with 400).
    assert client.post("/__admin/reset", json={"seed": 7.0}).json()["seed"] == 7
    assert create(client)["id"] == seeded


def test_reset_switches_the_clock_mode(client: TestClient) -> None:
    response = client.post("/__admin/reset", json={"clock": "polls"})
    assert response.json()["clock"]["mode"] == "polls"
    created = create(client)
    assert client.get(created["urls"]["get"]).json()["status"] == "processing"
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"

    manual = client.post("/__admin/reset", json={"clock": "manual"}).json()
    assert manual["clock"]["mode"] == "manual"
    created = create(client)
    moved = client.post("/__admin/clock", json={"advance": 10})
    assert moved.status_code == 200
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"

    assert client.post("/__admin/reset", json={"clock": "time"}).json()["clock"]["mode"] == "time"
    assert client.post("/__admin/clock", json={"advance": 1}).status_code == 409


def test_reset_can_change_the_time_scale(client: TestClient) -> None:
    client.post("/__admin/reset", json={"time_scale": 0})
    assert client.get("/__admin/health").json()["time_scale"] == 0
    created = create(client)
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "body",
    [
        {"clock": "sundial"},
        {"seed": "7"},
        {"seed": True},
        {"seed": 7.5},
        {"seed": -1},
        {"seed": 2**63},
        {"seed": float(2**63)},
        {"time_scale": -1},
        {"time_scale": "fast"},
        {"colour": "red"},
    ],
)
def test_reset_refuses_bad_options(client: TestClient, body: dict[str, Any]) -> None:
    create(client)
    response = client.post("/__admin/reset", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/__admin/health").json()["predictions"] == 1  # nothing was reset


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"", None, 200),
        (b" \r\n\t", "application/json", 200),  # JSON whitespace: no body
        (b"", "text/plain", 200),  # nothing sent, so its type does not matter
        (b"\x0b", "application/json", 400),  # found by schemathesis: was read as no body
        (b"\x0c{}", "application/json", 400),
        (b"{}", "text/plain", 415),
    ],
)
def test_reset_body_is_optional_but_must_be_json(
    client: TestClient, content: bytes, content_type: str | None, status: int
) -> None:
    create(client)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/__admin/reset", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert client.get("/__admin/health").json()["predictions"] == (0 if status == 200 else 1)


def test_reset_with_100k_predictions_leaves_none(app: Starlette, client: TestClient) -> None:
    """The time this takes is measured in bench/reset_bench.py, not asserted here."""
    store = app.state.ctx.store

    async def fill() -> None:
        for i in range(100_000):
            await store.add(prediction(id=f"p{i:025d}", input={"prompt": "many"}))

    asyncio.run(fill())
    assert client.get("/__admin/health").json()["predictions"] == 100_000
    assert client.post("/__admin/reset").status_code == 200
    assert client.get("/__admin/health").json()["predictions"] == 0
    assert client.get("/__admin/predictions").json() == {"predictions": []}
    assert asyncio.run(store.get("p" + "0" * 25)) is None


# ----------------------------------------------------------------------------- clock


def test_clock_get_advance_and_set(client: TestClient, clock: ManualClock) -> None:
    assert client.get("/__admin/clock").json()["now"] == "2024-01-01T00:00:00.000000Z"
    moved = client.post("/__admin/clock", json={"advance": 2.5}).json()
    assert moved["now"] == "2024-01-01T00:00:02.500000Z"
    assert clock.now() == datetime(2024, 1, 1, 0, 0, 2, 500_000, tzinfo=UTC)

    created = create(client)
    client.post("/__admin/clock", json={"advance": 1})
    assert client.get(created["urls"]["get"]).json()["status"] == "processing"

    moved = client.post("/__admin/clock", json={"set": "2025-06-01T12:00:00Z"}).json()
    assert moved["now"] == "2025-06-01T12:00:00.000000Z"
    assert client.get("/__admin/clock").json() == moved
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"
    offset = client.post("/__admin/clock", json={"set": "2025-06-01T14:00:00+02:00"}).json()
    assert offset["now"] == "2025-06-01T12:00:00.000000Z"


def test_moving_the_clock_releases_a_waiting_create(client: TestClient) -> None:
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            client.post, DEV, json={"input": {"prompt": "wait"}}, headers={"Prefer": "wait"}
        )
        for _ in range(10_000):  # the waiting create stores its prediction first
            if client.get("/__admin/health").json()["predictions"]:
                break
        else:
            pytest.fail("the waiting create never stored its prediction")
        client.post("/__admin/clock", json={"advance": 10})
        response = pending.result(timeout=10)
    assert response.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advance": -1},
        {"advance": "5"},
        {"advance": True},
        {"set": "yesterday"},
        {"set": "2025-01-01T00:00:00"},  # no time zone
        {"advance": 1, "set": "2025-01-01T00:00:00Z"},
        {"rewind": 1},
    ],
)
def test_clock_refuses_bad_bodies(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/__admin/clock", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/__admin/clock").json()["now"] == "2024-01-01T00:00:00.000000Z"


def test_clock_refuses_a_body_that_is_not_a_json_object(client: TestClient) -> None:
    assert client.post("/__admin/clock", json=[1]).status_code == 400
    not_json = client.post(
        "/__admin/clock", content=b"advance", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400


def test_clock_is_409_unless_manual() -> None:
    with checked_client(create_app(Settings())) as client:  # the real clock
        assert client.get("/__admin/clock").json()["mode"] == "time"
        response = client.post("/__admin/clock", json={"advance": 5})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert "manual" in response.json()["detail"]


def test_manual_clock_from_settings_moves() -> None:
    with checked_client(create_app(Settings(clock="manual")), **AUTH) as client:
        before = client.get("/__admin/clock").json()
        assert before["mode"] == "manual"
        created = create(client)
        assert client.get(created["urls"]["get"]).json()["status"] == "starting"
        client.post("/__admin/clock", json={"advance": 60})
        assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"


# ----------------------------------------------------------------------------- journal


def test_journal_records_requests_newest_first(client: TestClient, clock: ManualClock) -> None:
    created = create(client, prompt="journal me")
    clock.advance(1)
    client.get(created["urls"]["get"])
    entries = journal(client)
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", f"/v1/predictions/{created['id']}", 200),
        ("POST", DEV, 201),
    ]
    get, post = entries
    assert get["seq"] > post["seq"]
    assert post["at"] == "2024-01-01T00:00:00.000000Z"  # the server's clock
    assert get["at"] == "2024-01-01T00:00:01.000000Z"
    assert post["model"] == get["model"] == "black-forest-labs/flux-dev"
    assert '"journal me"' in post["request_body"]
    assert created["id"] in post["response_body"]
    assert '"processing"' in get["response_body"]
    assert post["scenario"] is None
    # The admin API's own calls are not recorded.
    assert not [e for e in journal(client) if e["path"].startswith("/__admin")]


def test_journal_filters(client: TestClient) -> None:
    dev = create(client)
    create(client, SCHNELL)
    client.get(dev["urls"]["get"])
    client.get("/v1/predictions?cursor=nonsense")  # 400
    client.get("/v1/predictions/" + "0" * 26)  # 404
    client.get("/replicate/v1/predictions")

    assert {e["method"] for e in journal(client, method="post")} == {"POST"}
    assert len(journal(client, method="POST")) == 2
    assert len(journal(client, method="GET")) == 4
    assert {e["path"] for e in journal(client, path="/v1/predictions/")} == {
        dev["urls"]["get"].removeprefix("http://testserver"),
        "/v1/predictions/" + "0" * 26,
    }
    assert [e["path"] for e in journal(client, path="/replicate/")] == ["/replicate/v1/predictions"]
    by_model = journal(client, model="black-forest-labs/flux-dev")
    assert [(e["method"], e["status"]) for e in by_model] == [("GET", 200), ("POST", 201)]
    assert len(journal(client, model="black-forest-labs/flux-schnell")) == 1
    assert [e["query"] for e in journal(client, status="400")] == ["cursor=nonsense"]
    assert len(journal(client, status="404")) == 1
    assert len(journal(client, method="GET", status="200")) == 2
    assert journal(client, status="500") == []
    assert len(journal(client, limit="2")) == 2


@pytest.mark.parametrize("params", [{"status": "abc"}, {"limit": "0"}, {"limit": "99999"}])
def test_journal_refuses_bad_filters(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/__admin/requests", params=params).status_code == 400


def test_journal_redacts_tokens(app: Starlette, client: TestClient) -> None:
    create(client)
    with checked_client(app, Authorization="Bearer r8_someone_else") as other:
        other.get("/v1/predictions")
    raw = client.get("/__admin/requests")
    assert TOKEN not in raw.text
    assert "r8_someone_else" not in raw.text
    tokens = [e["token"] for e in raw.json()["requests"]]
    assert all(REDACTED.match(t) for t in tokens)
    assert tokens[0] != tokens[1]  # still enough to tell callers apart
    create(client, prompt="again")
    assert journal(client)[0]["token"] == tokens[1]  # and stable per token
    with checked_client(app) as anonymous:
        anonymous.get("/v1/predictions")
    assert journal(client)[0]["token"] is None


def test_journal_records_the_scenario_header(client: TestClient) -> None:
    create(client, **{"X-Mock-Scenario": "fail"})
    assert journal(client)[0]["scenario"] == "fail"


def test_journal_bodies_are_truncated(client: TestClient) -> None:
    create(client, prompt="x" * 10_000)
    entry = journal(client)[0]
    assert len(entry["request_body"]) == 4096
    assert entry["request_body"].startswith('{"input":{"prompt":"xxx')
    assert len(entry["response_body"]) == 4096


def test_journal_is_bounded(app: Starlette, client: TestClient) -> None:
    assert app.state.ctx.journal.entries.maxlen == 10_000
    app.state.ctx.journal.entries = deque(maxlen=3)  # a small bound, to see the oldest go
    for i in range(5):
        client.get("/v1/predictions", params={"cursor": f"b{i + 1}"})
    assert [e["query"] for e in journal(client)] == ["cursor=b5", "cursor=b4", "cursor=b3"]


def test_journal_clear(client: TestClient) -> None:
    create(client)
    assert client.delete("/__admin/requests").status_code == 204
    assert journal(client) == []
    assert client.get("/__admin/health").json()["predictions"] == 1  # only the journal


def test_journal_does_not_record_image_bytes(client: TestClient) -> None:
    created = create(client, SCHNELL)
    client.post("/__admin/clock", json={"advance": 5})
    url = client.get(created["urls"]["get"]).json()["output"][0]
    image = client.get(url)
    assert image.status_code == 200
    entry = journal(client, path="/delivery/")[0]
    assert entry["status"] == 200
    assert entry["response_body"] == ""


# ----------------------------------------------------------------------------- scenarios


def test_scenarios_list_add_remove(client: TestClient) -> None:
    listed = client.get("/__admin/scenarios").json()["scenarios"]
    assert {s["name"] for s in listed if s["builtin"]} == BUILTINS
    rule = {
        "name": "dev-fails",
        "description": "flux-dev is down",
        "match": {"model": "black-forest-labs/flux-dev"},
        "outcome": {"status": "failed", "error": "dev is down"},
        "times": 3,
    }
    response = client.post("/__admin/scenarios", json=rule)
    assert response.status_code == 201
    stored = response.json()
    assert stored == rule | {"latency_ms": 0.0, "builtin": False}
    listed = client.get("/__admin/scenarios").json()["scenarios"]
    assert stored in listed
    # The same name replaces.
    replaced = client.post("/__admin/scenarios", json={"name": "dev-fails"}).json()
    assert replaced["match"] == {}
    names = [s["name"] for s in client.get("/__admin/scenarios").json()["scenarios"]]
    assert names.count("dev-fails") == 1

    assert client.delete("/__admin/scenarios/dev-fails").status_code == 204
    names = [s["name"] for s in client.get("/__admin/scenarios").json()["scenarios"]]
    assert "dev-fails" not in names
    missing = client.delete("/__admin/scenarios/dev-fails")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        pytest.param({"name": "x", "timing": {"scale": -1}}, "timing.scale", id="negative-scale"),
        pytest.param({"name": "x", "http": {"status": 200}}, "http.status", id="http-not-error"),
        pytest.param({"name": "x", "match": {"prompt": "("}}, "match.prompt", id="bad-regex"),
        pytest.param({"name": "x", "match": {"colour": "red"}}, "match", id="unknown-match-key"),
        pytest.param({"name": "x", "outcome": {"status": "done"}}, "outcome.status", id="outcome"),
        pytest.param({"name": "x", "outcome": {}}, "outcome", id="outcome-without-status"),
        pytest.param({"name": "bad name!"}, "name", id="bad-name"),
        pytest.param({"name": "x", "times": 0}, "times", id="zero-times"),
        pytest.param({"name": "x", "latency_ms": 10**6}, "latency_ms", id="latency-too-long"),
        pytest.param({"timing": {}}, "name", id="no-name"),
        pytest.param({"name": "x", "surprise": 1}, "surprise", id="unknown-key"),
    ],
)
def test_an_invalid_scenario_is_422_naming_the_field(
    client: TestClient, rule: dict[str, Any], field: str
) -> None:
    response = client.post("/__admin/scenarios", json=rule)
    assert response.status_code == 422
    problems = response.json()["invalid_fields"]
    assert len(problems) == 1
    assert field in f"{problems[0]['field']}: {problems[0]['description']}"
    names = {s["name"] for s in client.get("/__admin/scenarios").json()["scenarios"]}
    assert "x" not in names


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"name": "x", "timing": {"scale": -1}}, "timing.scale"),
        ({"name": "x", "http": {"status": 200}}, "http.status"),
        ({"name": "bad name!"}, "name"),
        ({"name": "x", "match": {"colour": "red"}}, "match"),
    ],
)
def test_the_422_names_the_field_itself(
    client: TestClient, rule: dict[str, Any], field: str
) -> None:
    """Not `(root)`: a wrong value inside a field is reported at that field."""
    response = client.post("/__admin/scenarios", json=rule)
    assert response.json()["invalid_fields"][0]["field"] == field


# ----------------------------------------------------------------------------- predictions


def test_admin_lists_predictions_across_tokens(app: Starlette, client: TestClient) -> None:
    mine = create(client)
    with checked_client(app, Authorization="Bearer r8_other") as other:
        theirs = create(other, SCHNELL)
        assert [p["id"] for p in other.get("/v1/predictions").json()["results"]] == [theirs["id"]]
    listed = client.get("/__admin/predictions").json()["predictions"]
    assert [p["prediction"]["id"] for p in listed] == [theirs["id"], mine["id"]]
    owners = [p["owner"] for p in listed]
    assert owners[0] != owners[1]
    assert TOKEN not in owners
    assert "r8_other" not in owners
    assert listed[1]["prediction"]["status"] == "starting"


def _force(client: TestClient, prediction_id: str, action: str, **body: str) -> dict[str, Any]:
    response = client.post(
        f"/__admin/predictions/{prediction_id}/{action}", json=body if body else None
    )
    assert response.status_code == 200, response.text
    forced: dict[str, Any] = response.json()["prediction"]
    return forced


@pytest.mark.parametrize("action", ["succeed", "fail", "cancel"])
def test_force_a_running_prediction(client: TestClient, clock: ManualClock, action: str) -> None:
    created = create(client)
    clock.advance(1)
    assert client.get(created["urls"]["get"]).json()["status"] == "processing"
    forced = _force(client, created["id"], action)
    expected = {"succeed": "succeeded", "fail": "failed", "cancel": "canceled"}[action]
    assert forced["status"] == expected
    assert forced["completed_at"] == "2024-01-01T00:00:01.000000Z"
    assert (forced["output"] is not None) is (action == "succeed")
    if action == "fail":
        assert forced["error"]
    # The API sees it too, and it stays so.
    clock.advance(60)
    seen = client.get(created["urls"]["get"]).json()
    assert seen["status"] == expected
    assert seen["completed_at"] == forced["completed_at"]


def test_force_fail_with_an_error_message(client: TestClient, clock: ManualClock) -> None:
    created = create(client)
    forced = _force(client, created["id"], "fail", error="GPU on fire")
    assert forced["status"] == "failed"
    assert forced["error"] == "GPU on fire"
    assert client.get(created["urls"]["get"]).json()["error"] == "GPU on fire"


def test_force_fail_refuses_a_non_string_error(client: TestClient) -> None:
    created = create(client)
    response = client.post(f"/__admin/predictions/{created['id']}/fail", json={"error": 5})
    assert response.status_code == 400
    assert client.get(created["urls"]["get"]).json()["status"] == "starting"


@pytest.mark.parametrize("action", ["succeed", "fail", "cancel"])
def test_force_changes_nothing_on_a_finished_prediction(
    client: TestClient, clock: ManualClock, action: str
) -> None:
    created = create(client)
    clock.advance(10)
    done = client.get(created["urls"]["get"]).json()
    assert done["status"] == "succeeded"
    clock.advance(5)
    body = {"error": "late"} if action == "fail" else {}
    forced = _force(client, created["id"], action, **body)
    assert forced == done
    assert client.get(created["urls"]["get"]).json() == done


def test_force_unknown_prediction_or_action_is_404(client: TestClient) -> None:
    created = create(client)
    assert client.post("/__admin/predictions/" + "0" * 26 + "/succeed").status_code == 404
    assert client.post(f"/__admin/predictions/{created['id']}/explode").status_code == 404


# ----------------------------------------------------------------------------- --admin-token


def test_admin_token_guards_only_the_admin_api() -> None:
    app = create_app(Settings(admin_token="adm"), clock=ManualClock())
    with checked_client(app) as anonymous:
        assert anonymous.get("/__admin/health").status_code == 401
    with checked_client(app, Authorization=f"Bearer {TOKEN}") as user:
        # The API still takes any token...
        created = create(user)
        assert user.get(created["urls"]["get"]).status_code == 200
        # ...but the admin API wants the admin token.
        for method, path in [
            ("GET", "/__admin/health"),
            ("POST", "/__admin/reset"),
            ("GET", "/__admin/clock"),
            ("GET", "/__admin/requests"),
            ("DELETE", "/__admin/requests"),
            ("GET", "/__admin/scenarios"),
            ("DELETE", "/__admin/scenarios/fail"),
            ("GET", "/__admin/predictions"),
            ("POST", f"/__admin/predictions/{created['id']}/cancel"),
        ]:
            response = user.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
    with checked_client(app, Authorization="Bearer adm") as admin:
        health = admin.get("/__admin/health").json()
        assert health["predictions"] == 1  # nothing was changed by the refused calls
        assert admin.post("/__admin/clock", json={"advance": 1}).status_code == 200
        assert (
            admin.get("/__admin/predictions").json()["predictions"][0]["prediction"]["id"]
            == (created["id"])
        )
        # The admin token is a token like any other for the API.
        assert admin.get("/v1/predictions").json()["results"] == []
        assert admin.post("/__admin/reset").status_code == 200


def test_admin_token_wrong_scheme_is_401() -> None:
    app = create_app(Settings(admin_token="adm"), clock=ManualClock())
    with checked_client(app, Authorization="Basic adm") as basic:
        assert basic.get("/__admin/health").status_code == 401
    with checked_client(app, Authorization="Token adm") as token:  # Replicate's older scheme
        assert token.get("/__admin/health").status_code == 200


def test_clock_set_far_in_the_future_is_fine(client: TestClient) -> None:
    created = create(client)
    when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=3650)
    client.post("/__admin/clock", json={"set": when.isoformat()})
    assert client.get(created["urls"]["get"]).json()["status"] == "succeeded"
