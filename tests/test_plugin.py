"""The pytest plugin (mock_server/pytest_plugin.py), used as a user would, through `pytester`."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Imported by every generated test file.
HEADER = """
import re
from datetime import UTC, datetime

import httpx
import pytest

DEV = "/models/black-forest-labs/flux-dev/predictions"


def create(server, prompt="a cat", path=DEV):
    r = httpx.post(server.v1_url + path, json={"input": {"prompt": prompt}}, headers=server.headers)
    assert r.is_success, r.text
    return r.json()


def get(server, prediction_id):
    r = httpx.get(server.v1_url + "/predictions/" + prediction_id, headers=server.headers)
    assert r.is_success, r.text
    return r.json()


def mine(server):
    r = httpx.get(server.v1_url + "/predictions", headers=server.headers)
    return [p["id"] for p in r.json()["results"]]
"""


def run(
    pytester: pytest.Pytester, body: str, *args: str, subprocess: bool = False
) -> pytest.RunResult:
    pytester.makepyfile(HEADER + body)
    options = ("--strict-markers", "-p", "no:cacheprovider", *args)
    if subprocess:
        return pytester.runpytest_subprocess(*options)
    # In process, mock_server is already imported (by this session), so cannot be rewritten.
    return pytester.runpytest(*options, "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_manual_clock_moves_only_when_told(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
MANUAL = pytest.mark.mock_server(clock="manual")


@MANUAL
def test_lifecycle(mock_server):
    p = create(mock_server)
    assert p["status"] == "starting"
    assert get(mock_server, p["id"])["status"] == "starting"
    mock_server.advance(1)
    p = get(mock_server, p["id"])
    assert p["status"] == "processing"
    assert re.search(r"^\\s*\\d+%\\|", p["logs"], re.M), p["logs"]
    mock_server.advance(10)
    p = get(mock_server, p["id"])
    assert p["status"] == "succeeded"
    assert p["output"][0].startswith(mock_server.url)


@MANUAL
def test_set_time(mock_server):
    mock_server.set_time(datetime(2030, 5, 1, tzinfo=UTC))
    assert create(mock_server)["created_at"].startswith("2030-05-01T00:00:00")
    with pytest.raises(ValueError, match="aware"):
        mock_server.set_time(datetime(2030, 5, 1))


def test_urls(mock_server):
    assert re.fullmatch(r"http://127\\.0\\.0\\.1:\\d+", mock_server.url)
    assert mock_server.replicate_base_url == mock_server.url + "/replicate"
    assert mock_server.cometapi_url == mock_server.url + "/replicate/v1"
    assert mock_server.headers == {"Authorization": "Bearer " + mock_server.token}
    r = httpx.get(mock_server.cometapi_url + "/predictions", headers=mock_server.headers)
    assert r.json()["results"] == []
""",
    )
    result.assert_outcomes(passed=3)


def test_each_test_starts_empty(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.parametrize("n", range(20))
def test_fresh(mock_server, n):
    assert mock_server.predictions() == []
    assert mock_server.requests() == []
    ids = [create(mock_server, f"prompt {i}")["id"] for i in range(n % 3)]
    assert mine(mock_server) == ids[::-1]
    # The last answer's journal entry is there already (and gone by the next test).
    assert mock_server.requests()[0]["path"] == "/v1/predictions"
""",
    )
    result.assert_outcomes(passed=20)


def test_marker_sets_clock_seed_and_scenarios(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
IDS = {}
BOOM = [
    {"name": "boom", "match": {"prompt": "boom"}, "outcome": {"status": "failed", "error": "Boom"}}
]


@pytest.mark.mock_server(clock="polls")
def test_polls(mock_server):
    p = create(mock_server)
    assert p["status"] == "starting"
    assert get(mock_server, p["id"])["status"] == "processing"
    assert get(mock_server, p["id"])["status"] == "succeeded"
    with pytest.raises(RuntimeError, match="not 'manual'"):
        mock_server.advance(1)


def test_seed_default(mock_server):
    IDS[0] = create(mock_server)["id"]


@pytest.mark.mock_server(seed=5)
def test_seed_5(mock_server):
    IDS[5] = create(mock_server)["id"]
    assert IDS[5] != IDS[0]
    assert httpx.get(mock_server.url + "/__admin/health").json()["seed"] == 5


@pytest.mark.mock_server(seed=0)
def test_seed_0_again(mock_server):
    assert create(mock_server)["id"] == IDS[0]


@pytest.mark.mock_server(clock="manual", scenarios=BOOM)
def test_scenario(mock_server):
    bad, good = create(mock_server, "boom boom"), create(mock_server, "a cat")
    mock_server.advance(60)
    bad, good = get(mock_server, bad["id"]), get(mock_server, good["id"])
    assert (bad["status"], bad["error"]) == ("failed", "Boom")
    assert good["status"] == "succeeded"


@pytest.mark.mock_server(clock="manual")
def test_scenario_gone_after_reset(mock_server):
    p = create(mock_server, "boom")
    mock_server.advance(60)
    assert get(mock_server, p["id"])["status"] == "succeeded"


@pytest.mark.mock_server(clock="sundial")
def test_bad_clock(mock_server):
    pass
""",
    )
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(
        ["E*ValueError: clock must be time, polls or manual, not 'sundial'"]
    )


def test_helpers_and_official_client(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import replicate


@pytest.mark.mock_server(clock="manual")
def test_finish_and_journal(mock_server):
    a, b = create(mock_server, "one"), create(mock_server, "two")
    failed = mock_server.finish(a["id"], "fail", error="x")
    assert (failed["status"], failed["error"]) == ("failed", "x")
    assert mock_server.finish(b["id"])["status"] == "succeeded"
    again = get(mock_server, a["id"])
    assert (again["status"], again["error"]) == ("failed", "x")
    assert [p["prediction"]["id"] for p in mock_server.predictions()] == [b["id"], a["id"]]
    posts = mock_server.requests(method="POST")
    assert [(e["path"], e["model"]) for e in posts] == [
        ("/v1" + DEV, "black-forest-labs/flux-dev")
    ] * 2
    # The admin API (finish, predictions) is not journaled.
    assert [e["method"] for e in mock_server.requests()] == ["GET", "POST", "POST"]
    with pytest.raises(ValueError, match="outcome"):
        mock_server.finish(a["id"], "explode")


@pytest.mark.mock_server(clock="time", time_scale=0.01)
def test_official_client(mock_server, monkeypatch):
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")
    mock_server.add_scenario(
        name="no-dogs", match={"prompt": "dog"}, outcome={"status": "failed", "error": "No dogs"}
    )
    client = mock_server.client()
    output = client.run("black-forest-labs/flux-schnell", input={"prompt": "a cat"})
    assert output[0].startswith(mock_server.url)
    assert httpx.get(output[0]).content[:4] == b"RIFF"
    with pytest.raises(replicate.exceptions.ModelError, match="No dogs"):
        client.run("black-forest-labs/flux-schnell", input={"prompt": "a dog"})
    mock_server.remove_scenario("no-dogs")
    assert len(client.run("black-forest-labs/flux-schnell", input={"prompt": "a dog"})) == 1
    with pytest.raises(KeyError):
        mock_server.remove_scenario("no-dogs")
""",
    )
    result.assert_outcomes(passed=2)


def test_in_process_app_and_client(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.mock_server(clock="manual")
def test_client(mock_app, mock_client):
    r = mock_client.post("/v1" + DEV, json={"input": {"prompt": "a cat"}})
    assert r.json()["created_at"].startswith("2024-01-01T00:00:00")
    mock_app.state.ctx.clock.advance(60)
    assert mock_client.get("/v1/predictions/" + r.json()["id"]).json()["status"] == "succeeded"


@pytest.mark.mock_server(clock="polls", seed=3, scenarios=[{"name": "x", "match": {"prompt": "x"}}])
def test_marker(mock_app):
    ctx = mock_app.state.ctx
    assert (ctx.settings.clock, ctx.settings.seed) == ("polls", 3)
    assert "x" in ctx.scenarios.rules


def test_no_live_server_needed(mock_client, request):
    assert "mock_server_live" not in request.fixturenames
""",
    )
    result.assert_outcomes(passed=3)


def test_xdist_gives_each_worker_its_own_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = run(
        pytester,
        """
import os

@pytest.mark.parametrize("n", range(8))
def test_isolated(mock_server, n):
    ids = [create(mock_server, f"worker {os.environ['PYTEST_XDIST_WORKER']} test {n} #{i}")["id"]
           for i in range(n + 1)]
    assert mine(mock_server) == ids[::-1]
    assert len(mock_server.predictions()) == n + 1
    with open("urls.txt", "a") as f:
        f.write(mock_server.url + "\\n")
""",
        "-n",
        "4",
        # Only the two plugins needed: each worker starts pytest afresh (~4x the imports).
        "-p",
        "xdist",
        "-p",
        "mock_server.pytest_plugin",
        subprocess=True,
    )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*4 workers*"])
    urls = (pytester.path / "urls.txt").read_text().split()
    assert len(urls) == 8
    assert 2 <= len(set(urls)) <= 4  # one server per worker, more than one worker used


def test_settings_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from mock_server import Settings

@pytest.fixture(scope="session")
def mock_server_settings():
    return Settings(port=0, api_tokens=("r8_custom",), admin_token="adm")
"""
    )
    result = run(
        pytester,
        """
def test_custom(mock_server):
    assert mock_server.token == "r8_custom"
    p = create(mock_server)
    assert mock_server.finish(p["id"])["status"] == "succeeded"  # sends the admin token
    assert len(mock_server.predictions()) == 1
    r = httpx.get(mock_server.v1_url + "/predictions", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_client(mock_client):
    assert mock_client.get("/v1/predictions").status_code == 200
""",
    )
    result.assert_outcomes(passed=2)


def test_readme_plugin_example_runs(pytester: pytest.Pytester) -> None:
    """The README's pytest-plugin snippet, run as a user's test file (README snippets are tests)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### pytest plugin", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(snippet)
    result = pytester.runpytest_subprocess(
        "--strict-markers", "-p", "no:cacheprovider", "-W", "error"
    )
    result.assert_outcomes(passed=3)


# A user's first test: the official client, no marker, no configuration.
FIRST_TEST = """
import replicate


def test_first(mock_server):
    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert len(output) == 1 and output[0].startswith(mock_server.url + "/delivery/")
    model = replicate.run("black-forest-labs/flux-2-flex", input={"prompt": "slowest model"})
    assert model.startswith(mock_server.url)
"""


def test_the_first_obvious_test_passes_with_no_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_first=FIRST_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=60)
    result.assert_outcomes(passed=1)


def test_a_client_waiting_on_a_manual_clock_fails_naming_the_fix(
    pytester: pytest.Pytester,
) -> None:
    """`replicate.run` on a manual clock nobody moves: the sync create is told after the stall
    timeout (the default 5 s here), and so is a client polling with `prediction.wait()` (0.5 s,
    from a sub-folder's settings)."""
    pytester.makepyfile(
        test_waits="""
import pytest
import replicate


@pytest.mark.mock_server(clock="manual")
def test_run(mock_server):
    replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
"""
    )
    polls = pytester.mkpydir("polls")
    (polls / "conftest.py").write_text(
        """
from dataclasses import replace

import pytest
from mock_server.pytest_plugin import DEFAULT_SETTINGS


@pytest.fixture(scope="session")
def mock_server_settings():
    return replace(DEFAULT_SETTINGS, clock_stall_timeout=0.5)
"""
    )
    (polls / "test_polls.py").write_text(
        """
import pytest
import replicate


@pytest.mark.mock_server(clock="manual")
def test_wait(mock_server):
    p = replicate.models.predictions.create(
        model="black-forest-labs/flux-schnell", input={"prompt": "x"}
    )
    assert p.status == "starting"
    p.reload()  # reading a running prediction is fine
    mock_server.advance(0.25)  # the clock moved: the wait starts over
    p.wait()
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=60)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # Once per failed test in the tracebacks; the short summary repeats the
    # message in full when pytest sees CI set, so count before it.
    failures = out.split("short test summary info")[0]
    assert failures.count("title: Manual clock not moving") == 2
    assert "not moved for 5 s, so it would wait forever. Move the clock (mock_server.advance" in out
    assert "not moved for 0.5 s" in out


def test_a_sub_folders_settings_get_their_own_live_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_root="""
def test_root(mock_server):
    assert mock_server.token == "r8_mock_server_pytest"
    with open("urls.txt", "a") as f:
        f.write("root " + mock_server.url + "\\n")
"""
    )
    custom = pytester.mkpydir("custom")
    (custom / "conftest.py").write_text(
        """
import pytest
from mock_server import Settings


@pytest.fixture(scope="session")
def mock_server_settings():
    return Settings(port=0, api_tokens=("r8_custom",), time_scale=0)
"""
    )
    (custom / "test_custom.py").write_text(
        """
import httpx


def test_custom(mock_server):
    assert mock_server.token == "r8_custom"
    r = httpx.get(mock_server.v1_url + "/predictions", headers={"Authorization": "Bearer other"})
    assert r.status_code == 401  # the server runs with these settings, not the root's
    assert httpx.get(mock_server.url + "/__admin/health").json()["time_scale"] == 0
    with open("urls.txt", "a") as f:
        f.write("custom " + mock_server.url + "\\n")
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error", "test_root.py", "custom", "test_root.py::test_root"
    )
    result.assert_outcomes(passed=2)
    urls = dict(line.split() for line in (pytester.path / "urls.txt").read_text().splitlines())
    assert urls["root"] != urls["custom"]
