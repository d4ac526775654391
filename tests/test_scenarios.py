"""Scenarios: the built-ins through `X-Mock-Scenario`, rules matched by model, prompt, token, route
and method, `times`, and a `--scenarios` file. In process, on the manual clock.

Forced HTTP errors (429, 500, 503) are whatever the scenario says, not part of the API's contract,
so those responses are read with `raw`, a client without the openapi.yaml check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mock_server import Settings, cli, create_app
from mock_server.clock import ManualClock
from mock_server.scenarios import ScenarioError
from tests.conftest import AUTH, CHECKED
from tests.conftest import create as post

DEV = "/v1/models/black-forest-labs/flux-dev/predictions"  # 0.3 s set-up + 3.2 s
SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"  # 0.2 s + 0.83 s
FLEX = "/v1/models/black-forest-labs/flux-2-flex/predictions"  # 1.0 s + 22.6 s
# Word for word what Replicate's safety checker answers (reference, section 1 and 4.1).
NSFW = "All generated images contained NSFW content. Try running it again with a different prompt."
SCENARIO = "X-Mock-Scenario"


@pytest.fixture
def raw(app: Starlette) -> Iterator[TestClient]:
    """The same app, for responses a scenario forces (documented as ScenarioError: checked too)."""
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as c:
        c.event_hooks = CHECKED
        yield c


def read(client: TestClient, created: dict[str, Any]) -> dict[str, Any]:
    response = client.get(created["urls"]["get"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def add(client: TestClient, rule: dict[str, Any]) -> None:
    response = client.post("/__admin/scenarios", json=rule)
    assert response.status_code == 201, response.text


def stored(client: TestClient) -> int:
    count: int = client.get("/__admin/health").json()["predictions"]
    return count


# ----------------------------------------------------------------------------- built-ins


def test_fail_fails_once_the_run_ends(client: TestClient, clock: ManualClock) -> None:
    created = post(client, **{SCENARIO: "fail"})
    assert created["status"] == "starting"
    clock.advance(1)
    running = read(client, created)
    assert running["status"] == "processing"
    assert running["error"] is None
    clock.advance(10)
    done = read(client, created)
    assert done["status"] == "failed"
    assert done["error"] == "Prediction failed: a mock model error"
    assert done["output"] is None
    assert done["completed_at"] is not None
    assert "image_count" not in done["metrics"]


def test_nsfw_fails_with_the_safety_checker_message(client: TestClient, clock: ManualClock) -> None:
    created = post(client, SCHNELL, **{SCENARIO: "nsfw"})
    clock.advance(5)
    done = read(client, created)
    assert done["status"] == "failed"
    assert done["error"] == NSFW
    assert done["output"] is None


def test_cancel_ends_canceled(client: TestClient, clock: ManualClock) -> None:
    created = post(client, **{SCENARIO: "cancel"})
    clock.advance(1)
    assert read(client, created)["status"] == "processing"
    clock.advance(10)
    done = read(client, created)
    assert done["status"] == "canceled"
    assert done["output"] is None
    assert done["error"] is None


def test_slow_is_still_processing_after_the_normal_time(
    client: TestClient, clock: ManualClock
) -> None:
    slow = post(client, prompt="slow", **{SCENARIO: "slow"})
    normal = post(client, prompt="normal")
    clock.advance(5)  # flux-dev needs 3.5 s; ten times that is 35 s
    assert read(client, normal)["status"] == "succeeded"
    assert read(client, slow)["status"] == "processing"
    clock.advance(31)
    assert read(client, slow)["status"] == "succeeded"


def test_instant_succeeds_on_the_first_read(client: TestClient) -> None:
    created = post(client, FLEX, **{SCENARIO: "instant"})
    assert created["status"] == "starting"  # a create without Prefer: wait answers starting
    done = read(client, created)
    assert done["status"] == "succeeded"
    assert done["output"]


def test_instant_with_prefer_wait_answers_succeeded(client: TestClient) -> None:
    created = post(client, FLEX, **{SCENARIO: "instant", "Prefer": "wait"})
    assert created["status"] == "succeeded"
    assert created["output"]


def test_rate_limit_is_429_with_retry_after(raw: TestClient, client: TestClient) -> None:
    created = post(client)
    response = raw.get(created["urls"]["get"], headers={SCENARIO: "rate-limit"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "title": "Too Many Requests",
        "detail": "Request was throttled. Expected available in 1 second.",
        "status": 429,
    }


@pytest.mark.parametrize(("name", "status"), [("server-error", 500), ("unavailable", 503)])
def test_server_error_and_unavailable(
    raw: TestClient, client: TestClient, name: str, status: int
) -> None:
    created = post(client)
    response = raw.get(created["urls"]["get"], headers={SCENARIO: name})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert ("retry-after" in response.headers) is (status == 503)
    assert read(client, created)["id"] == created["id"]  # only that request was refused


def test_latency_still_answers(client: TestClient) -> None:
    created = post(client, **{SCENARIO: "latency"})
    response = client.get(created["urls"]["get"], headers={SCENARIO: "latency"})
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


def test_an_unknown_scenario_is_400(client: TestClient) -> None:
    response = client.post(
        DEV, json={"input": {"prompt": "a fox"}}, headers={SCENARIO: "no-such-thing"}
    )
    assert response.status_code == 400
    assert "no-such-thing" in response.json()["detail"]
    assert stored(client) == 0


@pytest.mark.parametrize("name", ["rate-limit", "server-error", "unavailable"])
def test_a_forced_http_error_on_create_stores_nothing(
    raw: TestClient, client: TestClient, name: str
) -> None:
    refused = raw.post(DEV, json={"input": {"prompt": "a fox"}}, headers={SCENARIO: name})
    assert refused.status_code in (429, 500, 503)
    assert stored(client) == 0
    assert client.get("/v1/predictions").json()["results"] == []
    # Nor does it count: the next identical request gets the id it would have had anyway.
    with TestClient(create_app(Settings(), clock=ManualClock()), headers=AUTH) as fresh:
        expected = post(fresh)["id"]
    assert post(client)["id"] == expected


# ----------------------------------------------------------------------------- rules


def test_rule_by_model(client: TestClient, clock: ManualClock) -> None:
    add(
        client,
        {
            "name": "dev-down",
            "match": {"model": "black-forest-labs/flux-dev"},
            "outcome": {"status": "failed", "error": "flux-dev is down"},
        },
    )
    dev = post(client)
    by_version = client.post(
        "/v1/predictions",
        json={"version": "black-forest-labs/flux-dev", "input": {"prompt": "by version"}},
    ).json()
    schnell = post(client, SCHNELL)
    clock.advance(60)
    assert read(client, dev)["error"] == "flux-dev is down"
    assert read(client, by_version)["status"] == "failed"
    assert read(client, schnell)["status"] == "succeeded"


def test_rule_by_model_wildcard(client: TestClient, clock: ManualClock) -> None:
    add(
        client,
        {
            "name": "flux-2",
            "match": {"model": "black-forest-labs/flux-2-*"},
            "outcome": {"status": "canceled"},
        },
    )
    flex = post(client, FLEX)
    dev = post(client)
    clock.advance(60)
    assert read(client, flex)["status"] == "canceled"
    assert read(client, dev)["status"] == "succeeded"


def test_rule_by_prompt_pattern(client: TestClient, clock: ManualClock) -> None:
    add(
        client,
        {
            "name": "nsfw-words",
            "match": {"prompt": "(?i)\\bnsfw\\b"},
            "outcome": {"status": "failed", "error": NSFW},
        },
    )
    flagged = post(client, prompt="Something NSFW here")
    fine = post(client, prompt="nsfwish, but not the word")
    clock.advance(60)
    assert read(client, flagged)["error"] == NSFW
    assert read(client, fine)["status"] == "succeeded"


def test_rule_by_token(app: Starlette, client: TestClient) -> None:
    add(client, {"name": "vip", "match": {"token": "r8_vip"}, "timing": {"setup": 0, "predict": 0}})
    mine = post(client)
    with TestClient(app, headers={"Authorization": "Bearer r8_vip"}) as vip:
        vip.event_hooks = CHECKED
        theirs = post(vip)
        assert read(vip, theirs)["status"] == "succeeded"
    assert read(client, mine)["status"] == "starting"


def test_rule_by_route_and_method(raw: TestClient, client: TestClient) -> None:
    add(
        client,
        {
            "name": "list-down",
            "match": {"route": "listPredictions", "method": "GET"},
            "http": {"status": 503, "headers": {"Retry-After": "2"}},
        },
    )
    created = post(client)
    for prefix in ("/v1", "/replicate/v1"):  # the route names both prefixes' operation
        refused = raw.get(f"{prefix}/predictions")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json() == {"status": 503}  # no body given: the status alone
    assert read(client, created)["id"] == created["id"]  # another route is untouched


def test_rule_by_method(raw: TestClient, client: TestClient) -> None:
    created = post(client)
    add(client, {"name": "no-posts", "match": {"method": "post"}, "http": {"status": 500}})
    assert raw.post(created["urls"]["cancel"]).status_code == 500
    assert raw.post(SCHNELL, json={"input": {"prompt": "x"}}).status_code == 500
    assert read(client, created)["status"] == "starting"  # GETs pass; the cancel never happened
    assert stored(client) == 1


def test_rule_matches_only_when_every_field_matches(client: TestClient, clock: ManualClock) -> None:
    add(
        client,
        {
            "name": "both",
            "match": {"model": "black-forest-labs/flux-dev", "prompt": "^break me"},
            "outcome": {"status": "failed"},
        },
    )
    both = post(client, prompt="break me, dev")
    other_model = post(client, SCHNELL, prompt="break me, schnell")
    other_prompt = post(client, prompt="do not break me")
    clock.advance(60)
    assert read(client, both)["status"] == "failed"
    assert read(client, both)["error"] == "Prediction failed"
    assert read(client, other_model)["status"] == "succeeded"
    assert read(client, other_prompt)["status"] == "succeeded"


def test_rule_with_prompt_never_matches_a_get(raw: TestClient, client: TestClient) -> None:
    """A GET has no prompt: a prompt rule applies to creates only."""
    add(client, {"name": "p", "match": {"prompt": ".*"}, "http": {"status": 500}})
    assert raw.post(DEV, json={"input": {"prompt": "x"}}).status_code == 500
    assert client.get("/v1/predictions").status_code == 200


def test_a_rule_without_match_applies_only_through_the_header(
    client: TestClient, clock: ManualClock
) -> None:
    add(client, {"name": "doomed", "outcome": {"status": "failed", "error": "doomed"}})
    plain = post(client)
    named = post(client, prompt="named", **{SCENARIO: "doomed"})
    clock.advance(60)
    assert read(client, plain)["status"] == "succeeded"
    assert read(client, named)["error"] == "doomed"


def test_times_two_applies_to_exactly_the_next_two_matching_requests(
    raw: TestClient, client: TestClient
) -> None:
    created = post(client)
    add(
        client,
        {
            "name": "twice",
            "match": {"route": "getPrediction"},
            "http": {"status": 503, "headers": {"Retry-After": "1"}},
            "times": 2,
        },
    )
    url = created["urls"]["get"]
    assert raw.get(url).status_code == 503
    assert client.get("/v1/predictions").status_code == 200  # not matching: not counted
    assert raw.get(url).status_code == 503
    assert [raw.get(url).status_code for _ in range(3)] == [200, 200, 200]
    rules = client.get("/__admin/scenarios").json()["scenarios"]
    assert next(r for r in rules if r["name"] == "twice")["times"] == 0


def test_times_through_the_header(client: TestClient, clock: ManualClock) -> None:
    add(client, {"name": "once", "outcome": {"status": "canceled"}, "times": 1})
    first = post(client, prompt="first", **{SCENARIO: "once"})
    second = post(client, prompt="second", **{SCENARIO: "once"})  # spent, but still known
    clock.advance(60)
    assert read(client, first)["status"] == "canceled"
    assert read(client, second)["status"] == "succeeded"


def test_custom_latency_rule_still_answers(client: TestClient) -> None:
    add(client, {"name": "sluggish", "match": {"route": "getPrediction"}, "latency_ms": 5})
    created = post(client)
    assert read(client, created)["status"] == "starting"


def test_timing_rule(client: TestClient, clock: ManualClock) -> None:
    add(client, {"name": "t", "match": {"prompt": "^timed"}, "timing": {"setup": 2, "predict": 4}})
    created = post(client, SCHNELL, prompt="timed run")
    clock.advance(1.5)
    assert read(client, created)["status"] == "starting"
    clock.advance(1)
    assert read(client, created)["status"] == "processing"
    clock.advance(4)
    done = read(client, created)
    assert done["status"] == "succeeded"
    assert done["metrics"]["predict_time"] == pytest.approx(4)


def test_absurd_timing_is_refused(client: TestClient) -> None:
    response = client.post("/__admin/scenarios", json={"name": "x", "timing": {"scale": 1e300}})
    assert response.status_code == 422
    assert response.json()["invalid_fields"][0]["field"] == "timing.scale"


# ----------------------------------------------------------------------------- scenarios.yaml


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios.yaml"


def test_a_default_server_has_only_the_builtins(client: TestClient, clock: ManualClock) -> None:
    rules = client.get("/__admin/scenarios").json()["scenarios"]
    assert rules
    assert all(rule["builtin"] for rule in rules)
    p = post(client, SCHNELL, prompt="fail me please")
    clock.advance(30)
    assert read(client, p)["status"] == "succeeded"


def test_the_example_rules_load_with_scenarios_path() -> None:
    app = create_app(Settings(scenarios_path=EXAMPLES), clock=ManualClock())
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as raw:
        rules = {r["name"]: r for r in raw.get("/__admin/scenarios").json()["scenarios"]}
        assert [n for n, r in rules.items() if not r["builtin"]] == [
            "example-fail-me",
            "example-slow-flux-2-max",
            "example-throttled-token",
        ]
        failing = post(raw, SCHNELL, prompt="fail me please")
        slow = post(raw, "/v1/models/black-forest-labs/flux-2-max/predictions", prompt="slow fox")
        app.state.ctx.clock.advance(30)  # flux-2-max: 16 s normally, five times that here
        assert read(raw, failing)["status"] == "failed"
        assert read(raw, slow)["status"] == "processing"


def test_the_example_throttled_token_is_throttled_twice() -> None:
    app = create_app(Settings(scenarios_path=EXAMPLES), clock=ManualClock())
    throttled = {"Authorization": "Bearer r8_throttled_example"}
    with TestClient(app, raise_server_exceptions=False, headers=throttled) as raw:
        raw.event_hooks = CHECKED
        post(raw, SCHNELL, Authorization="Bearer r8_someone_else")  # that token only
        assert raw.get("/v1/predictions").status_code == 200  # its creates only
        answers = [raw.post(SCHNELL, json={"input": {"prompt": "x"}}) for _ in range(3)]
        assert [r.status_code for r in answers] == [429, 429, 201]
        assert answers[0].headers["retry-after"] == "1"
        assert answers[0].json() == {
            "detail": "Request was throttled. Expected available in 1 second.",
            "status": 429,
        }


def test_the_cli_prints_the_example_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["example-scenarios"]) == 0
    assert capsys.readouterr().out == EXAMPLES.read_text(encoding="utf-8")


@pytest.fixture
def scenarios_file(tmp_path: Path) -> Path:
    return tmp_path / "scenarios.yaml"


def test_rules_load_from_scenarios_yaml(scenarios_file: Path) -> None:
    scenarios_file.write_text(
        "# a comment\n"
        "scenarios:\n"
        "  - name: throttle-schnell\n"
        "    description: every schnell create is throttled, twice\n"
        "    match: {model: black-forest-labs/flux-schnell, route: createPrediction}\n"
        "    http:\n"
        "      status: 429\n"
        "      headers: {Retry-After: '3'}\n"
        "      body: {detail: slow down, status: 429}\n"
        "    times: 2\n"
    )
    app = create_app(Settings(scenarios_path=scenarios_file), clock=ManualClock())
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as raw:
        listed = {r["name"]: r for r in raw.get("/__admin/scenarios").json()["scenarios"]}
        assert listed["throttle-schnell"]["builtin"] is False
        assert listed["throttle-schnell"]["times"] == 2
        statuses = [raw.post(SCHNELL, json={"input": {"prompt": "x"}}) for _ in range(3)]
        assert [r.status_code for r in statuses] == [429, 429, 201]
        assert statuses[0].headers["retry-after"] == "3"
        assert statuses[0].json() == {"detail": "slow down", "status": 429}
        # A reset brings the file's rules back as they were, `times` included.
        raw.delete("/__admin/scenarios/throttle-schnell")
        raw.post("/__admin/reset")
        listed = {r["name"]: r for r in raw.get("/__admin/scenarios").json()["scenarios"]}
        assert listed["throttle-schnell"]["times"] == 2
        assert raw.post(SCHNELL, json={"input": {"prompt": "x"}}).status_code == 429


def test_a_missing_scenarios_file_stops_the_app(scenarios_file: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        create_app(Settings(scenarios_path=scenarios_file))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(
            "scenarios:\n  - name: ok\n  - name: bad\n    timing: {scale: -1}\n",
            "scenarios[1]: timing.scale",
            id="negative-scale",
        ),
        pytest.param(
            "scenarios:\n  - name: bad\n    match: {prompt: '(unclosed'}\n",
            "scenarios[0]: match.prompt",
            id="bad-regex",
        ),
        pytest.param(
            "scenarios:\n  - name: bad\n    outcome: {status: exploded}\n",
            "scenarios[0]: outcome.status",
            id="bad-outcome",
        ),
        pytest.param("scenarios:\n  - description: no name\n", "scenarios[0]", id="no-name"),
        pytest.param("scenarios: {name: x}\n", "scenarios", id="not-a-list"),
        pytest.param("scenarios: [unclosed\n", "cannot read", id="bad-yaml"),
    ],
)
def test_a_bad_scenarios_yaml_stops_the_app_naming_the_field(
    scenarios_file: Path, text: str, field: str
) -> None:
    scenarios_file.write_text(text)
    with pytest.raises(ScenarioError) as info:
        create_app(Settings(scenarios_path=scenarios_file))
    assert str(scenarios_file) in str(info.value)
    assert field in str(info.value)


def test_mock_server_check_reports_a_bad_scenarios_yaml(
    scenarios_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios_file.write_text("scenarios:\n  - name: x\n    times: 0\n")
    assert cli.main(["check", "--scenarios", str(scenarios_file)]) == 1
    err = capsys.readouterr().err
    assert "scenarios.yaml: scenarios[0]: times" in err
    assert "Traceback" not in err
