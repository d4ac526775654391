"""The pytest plugin against a shared server (`--mock-server-url`), as a CI farm runs it: pytest
sessions in child processes, each with its own token, against one `python -m mock_server`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server.auth import owner_of
from mock_server.plugin_remote import RemoteServer, SharedServerError
from tests.conftest import spawned_server

pytest_plugins = ["pytester"]

RUN_TIMEOUT = 180  # seconds for one child pytest session
OPTIONS = ("--strict-markers", "-p", "no:cacheprovider", "-W", "error")
FLUX = "/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture(scope="module")
def shared_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the whole module, as a farm's: the real clock at 1/100 of the timings."""
    log = tmp_path_factory.mktemp("shared") / "server.log"
    with spawned_server("--time-scale", "0.01", log=log) as (url, _):
        yield url


@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child sessions take the server from the command line, never from this shell."""
    monkeypatch.delenv("MOCK_SERVER_URL", raising=False)
    monkeypatch.delenv("MOCK_SERVER_ADMIN_TOKEN", raising=False)


def admin_predictions(url: str) -> list[dict[str, Any]]:
    r = httpx.get(url + "/__admin/predictions")
    assert r.is_success, r.text
    predictions: list[dict[str, Any]] = r.json()["predictions"]
    return predictions


def create(url: str, token: str, prompt: str) -> dict[str, Any]:
    r = httpx.post(
        url + "/v1" + FLUX,
        json={"input": {"prompt": prompt}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.text
    prediction: dict[str, Any] = r.json()
    return prediction


# Job A: one prediction, kept while job B's tests each reset; job B waits for A's prediction
# before its resets start, and tells A when they are over (files in SHARED_DIR).
JOB_A = """
import os
import pathlib
import time

import httpx
import replicate

SHARED = pathlib.Path(os.environ["SHARED_DIR"])
FLUX = "/models/black-forest-labs/flux-schnell/predictions"


def wait_for(name):
    deadline = time.monotonic() + 90
    while not (SHARED / name).exists():
        assert time.monotonic() < deadline, f"{name} never came"
        time.sleep(0.05)
    return (SHARED / name).read_text()


def test_keeps_its_prediction_through_the_other_jobs_resets(mock_server):
    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "job A"})
    assert output[0].startswith(mock_server.url)
    mine = mock_server.predictions()
    assert len(mine) == 1, mine
    pid = mine[0]["prediction"]["id"]
    (SHARED / "a-created").write_text(pid)
    wait_for("b-done")
    assert [p["prediction"]["id"] for p in mock_server.predictions()] == [pid]
    r = httpx.get(mock_server.v1_url + "/predictions/" + pid, headers=mock_server.headers)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    posts = mock_server.requests(method="POST")
    assert len(posts) == 1 and posts[0]["path"].endswith(FLUX), posts
"""

JOB_B = """
import os
import pathlib
import time

import httpx
import pytest
import replicate

SHARED = pathlib.Path(os.environ["SHARED_DIR"])
A = {}


def test_0_wait_for_job_a(mock_server):
    deadline = time.monotonic() + 90
    while not (SHARED / "a-created").exists():
        assert time.monotonic() < deadline, "job A never created its prediction"
        time.sleep(0.05)
    A["id"] = (SHARED / "a-created").read_text()


@pytest.mark.parametrize("n", range(8))
def test_1_reset_heavy(mock_server, n):
    assert mock_server.predictions() == []  # this job's: reset before each test
    assert mock_server.requests() == []
    replicate.run("black-forest-labs/flux-schnell", input={"prompt": f"job B {n}"})
    mine = mock_server.predictions()
    assert len(mine) == 1 and "job B" in str(mine[0]["prediction"]["input"]), mine
    # Job A's prediction is on the server, but not among this job's.
    everyone = httpx.get(mock_server.url + "/__admin/predictions").json()["predictions"]
    assert A["id"] in [p["prediction"]["id"] for p in everyone]
    assert A["id"] not in [p["prediction"]["id"] for p in mine]
    entries = mock_server.requests()
    assert entries and {e["token"] for e in entries} == {entries[0]["token"]}
    assert [e["method"] for e in mock_server.requests(method="POST")] == ["POST"]


def test_2_done(mock_server):
    (SHARED / "b-done").write_text("done")
"""


def test_two_concurrent_sessions_see_and_reset_only_their_own(
    pytester: pytest.Pytester, shared_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_job_a=JOB_A, test_job_b=JOB_B)
    shared = pytester.mkdir("shared")
    monkeypatch.setenv("SHARED_DIR", str(shared))
    base = [sys.executable, "-m", "pytest", *OPTIONS, "--mock-server-url", shared_url]
    jobs = {
        name: pytester.popen(
            [*base, f"test_job_{name}.py"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        for name in ("a", "b")
    }
    outputs = {}
    for name, proc in jobs.items():
        try:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in jobs.values():
                p.kill()
            raise
        outputs[name] = (proc.returncode, out.decode(errors="replace"))
    for name, (code, out) in outputs.items():
        assert code == 0, f"job {name}:\n{out}"
    assert " 1 passed" in outputs["a"][1]
    assert " 10 passed" in outputs["b"][1]
    # Each session freed what its token left when it ended.
    a_id = (shared / "a-created").read_text()
    assert a_id not in [p["prediction"]["id"] for p in admin_predictions(shared_url)]


def test_xdist_workers_get_tokens_of_their_own(pytester: pytest.Pytester, shared_url: str) -> None:
    pytester.makepyfile(
        """
import os

import httpx
import pytest


@pytest.mark.parametrize("n", range(6))
def test_isolated(mock_server, n):
    for i in range(n % 3 + 1):
        r = httpx.post(
            mock_server.v1_url + "/models/black-forest-labs/flux-dev/predictions",
            json={"input": {"prompt": f"test {n} #{i}"}},
            headers=mock_server.headers,
        )
        assert r.status_code == 201, r.text
    assert len(mock_server.predictions()) == n % 3 + 1
    with open("tokens.txt", "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + " " + mock_server.token + "\\n")
"""
    )
    result = pytester.runpytest_subprocess(
        *OPTIONS,
        "-n",
        "2",
        "-p",
        "xdist",
        "--mock-server-url",
        shared_url,
        timeout=RUN_TIMEOUT,
    )
    result.assert_outcomes(passed=6)
    pairs = {
        tuple(line.split()) for line in (pytester.path / "tokens.txt").read_text().splitlines()
    }
    workers = {worker for worker, _ in pairs}
    tokens = {token for _, token in pairs}
    assert len(pairs) == len(workers) == len(tokens)  # one token per worker, none shared
    assert all(t.startswith("r8_mock_") for t in tokens)


def test_a_marker_the_shared_server_cannot_apply_fails_naming_it(
    pytester: pytest.Pytester, shared_url: str
) -> None:
    pytester.makepyfile(
        """
import pytest


@pytest.mark.mock_server(clock="manual")
def test_manual(mock_server):
    pass


@pytest.mark.mock_server(seed=7, time_scale=1)
def test_seed(mock_server):
    pass


@pytest.mark.mock_server(output_urls="data")
def test_output_urls(mock_server):
    pass


@pytest.mark.mock_server(clock="time", seed=0, time_scale=0.01)
def test_what_the_server_runs(mock_server):
    with pytest.raises(RuntimeError, match="not 'manual'"):
        mock_server.advance(1)
    with pytest.raises(RuntimeError, match="cannot apply"):
        mock_server.reset(seed=3)
    mock_server.reset(seed=0)
"""
    )
    result = pytester.runpytest_subprocess(
        *OPTIONS, "--mock-server-url", shared_url, timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=1, errors=3)
    out = result.stdout.str()
    where = f"cannot apply on the shared mock server at {shared_url} (--mock-server-url)"
    assert f"@pytest.mark.mock_server(clock='manual') {where}: clock='manual', but it runs " in out
    assert "with clock='time'" in out
    assert "@pytest.mark.mock_server(seed=7, time_scale=1) " + where in out
    assert "seed=7, but it runs with seed=0; time_scale=1, but it runs with time_scale=0.01" in out
    assert "@pytest.mark.mock_server(output_urls='data') " + where in out


def test_a_per_token_reset_leaves_other_tokens_predictions(
    pytester: pytest.Pytester, shared_url: str
) -> None:
    other = create(shared_url, "r8_someone_else", "not the job's")
    pytester.makepyfile(
        """
import httpx


def test_reset(mock_server):
    assert mock_server.token == "r8_job_token"
    r = httpx.post(
        mock_server.v1_url + "/models/black-forest-labs/flux-dev/predictions",
        json={"input": {"prompt": "the job's"}},
        headers=mock_server.headers,
    )
    assert r.status_code == 201, r.text
    assert len(mock_server.predictions()) == 1
    mock_server.reset()
    assert mock_server.predictions() == []
    assert mock_server.requests() == []
    everyone = httpx.get(mock_server.url + "/__admin/predictions").json()["predictions"]
    assert len(everyone) >= 1
"""
    )
    result = pytester.runpytest_subprocess(
        *OPTIONS,
        "--mock-server-url",
        shared_url,
        "--mock-server-token",
        "r8_job_token",
        timeout=RUN_TIMEOUT,
    )
    result.assert_outcomes(passed=1)
    owners = {p["prediction"]["id"]: p["owner"] for p in admin_predictions(shared_url)}
    assert owners.get(other["id"]) == owner_of("r8_someone_else")
    assert owner_of("r8_job_token") not in owners.values()


def test_scenarios_apply_to_the_job_that_added_them(
    pytester: pytest.Pytester, shared_url: str
) -> None:
    pytester.makepyfile(
        """
import httpx
import pytest
import replicate

BOOM = [
    {
        "name": "boom-shared",
        "match": {"prompt": "boom"},
        "outcome": {"status": "failed", "error": "Boom"},
    }
]


def rules(mock_server):
    scenarios = httpx.get(mock_server.url + "/__admin/scenarios").json()["scenarios"]
    return {r["name"]: r for r in scenarios}


@pytest.mark.mock_server(scenarios=BOOM)
def test_marker_scenario(mock_server):
    assert rules(mock_server)["boom-shared"]["match"]["token"] == mock_server.token
    with pytest.raises(replicate.exceptions.ModelError, match="Boom"):
        replicate.run("black-forest-labs/flux-schnell", input={"prompt": "boom"})
    # Another token's request on the same server: the scenario is not for it.
    r = httpx.post(
        mock_server.v1_url + "/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "boom"}},
        headers={"Authorization": "Bearer r8_another_job", "Prefer": "wait=10"},
        timeout=20,
    )
    assert r.json()["status"] == "succeeded", r.text


def test_added_and_removed(mock_server):
    assert "boom-shared" not in rules(mock_server)  # removed at the end of the test above
    mock_server.add_scenario(
        name="no-dogs", match={"prompt": "dog"}, outcome={"status": "failed", "error": "No dogs"}
    )
    with pytest.raises(replicate.exceptions.ModelError, match="No dogs"):
        replicate.run("black-forest-labs/flux-schnell", input={"prompt": "a dog"})
    mock_server.remove_scenario("no-dogs")
    assert len(replicate.run("black-forest-labs/flux-schnell", input={"prompt": "a dog"})) == 1
    with pytest.raises(KeyError):
        mock_server.remove_scenario("no-dogs")
    mock_server.add_scenario(
        name="left-behind", match={"prompt": "x"}, outcome={"status": "canceled"}
    )


def test_left_behind_is_gone(mock_server):
    assert "left-behind" not in rules(mock_server)
"""
    )
    result = pytester.runpytest_subprocess(
        *OPTIONS, "--mock-server-url", shared_url, timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=3)
    names = {r["name"] for r in httpx.get(shared_url + "/__admin/scenarios").json()["scenarios"]}
    assert not names & {"boom-shared", "no-dogs", "left-behind"}


def test_a_manual_shared_clock_moves_for_the_test(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
from datetime import UTC, datetime, timedelta

import httpx
import pytest


@pytest.mark.mock_server(clock="manual")
def test_clock(mock_server):
    start = mock_server.now()
    assert mock_server.advance(5) == start + timedelta(seconds=5)
    when = datetime(2030, 5, 1, tzinfo=UTC)
    assert mock_server.set_time(when) == when
    assert mock_server.now() == when
    r = httpx.post(
        mock_server.v1_url + "/models/black-forest-labs/flux-dev/predictions",
        json={"input": {"prompt": "a cat"}},
        headers=mock_server.headers,
    )
    assert r.json()["created_at"].startswith("2030-05-01T00:00:00")
    assert mock_server.finish(r.json()["id"], "fail", error="x")["status"] == "failed"
    with pytest.raises(ValueError, match="aware"):
        mock_server.set_time(datetime(2030, 5, 1))
"""
    )
    with spawned_server(
        "--clock", "manual", "--admin-token", "adm", log=tmp_path / "server.log"
    ) as (url, _):
        result = pytester.runpytest_subprocess(
            *OPTIONS,
            "--mock-server-url",
            url,
            "--mock-server-admin-token",
            "adm",
            timeout=RUN_TIMEOUT,
        )
        result.assert_outcomes(passed=1)
        # Without the admin token the session cannot use the admin API: it says so.
        result = pytester.runpytest_subprocess(
            *OPTIONS, "--mock-server-url", url, timeout=RUN_TIMEOUT
        )
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines([f"*--mock-server-url {url}: GET {url}/__admin/health*401*"])


def test_a_server_without_per_token_reset_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older server refuses `{"token": ...}` (400 "Unknown reset option"): the plugin says so
    rather than fall back to a reset of every job's state."""
    server = RemoteServer("http://127.0.0.1:9", "r8_t")
    answers = {"POST /__admin/reset": (400, {"detail": "Unknown reset option: token."})}
    monkeypatch.setattr(
        server, "_send", lambda method, path, body=None, query=None: answers[f"{method} {path}"]
    )
    with pytest.raises(SharedServerError, match=r"cannot reset one token's state.*upgrade"):
        server.reset()


def test_an_unreachable_shared_server_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(mock_server):\n    pass\n")
    result = pytester.runpytest_subprocess(
        *OPTIONS, "--mock-server-url", "http://127.0.0.1:9", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot reach the mock server at http://127.0.0.1:9*"])
