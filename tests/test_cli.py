"""The command line: flags and MOCK_SERVER_* variables, `check`, and a real `python -m` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from starlette.testclient import TestClient

from mock_server import Settings, cli, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH, CHECKED, PROJECT, child_environ, spawned_server

FIXTURES = PROJECT / "fixtures"
Fixture = dict[str, Any]
CREATE = "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main()` reads os.environ: start every test without MOCK_SERVER_* variables."""
    for name in list(os.environ):
        if name.startswith("MOCK_SERVER_"):
            monkeypatch.delenv(name)


def test_defaults_without_flags_or_environment() -> None:
    command, settings = cli.settings_from([], {})
    assert command == "serve"
    assert settings == Settings()


def test_every_flag() -> None:
    command, settings = cli.settings_from(
        [
            "check",
            *("--host", "0.0.0.0", "--port", "9123", "--seed", "42", "--time-scale", "0.5"),
            *("--fixtures", "/tmp/fx", "--spec", "/tmp/spec.yaml"),
            *("--public-url", "https://mock.example", "--max-body-bytes", "2048"),
            *("--api-token", "one", "--api-token", "two", "--access-log"),
        ],
        {},
    )
    assert command == "check"
    assert settings.host == "0.0.0.0"
    assert settings.port == 9123
    assert settings.seed == 42
    assert settings.time_scale == 0.5
    assert settings.fixtures_dir == Path("/tmp/fx")
    assert settings.spec_path == Path("/tmp/spec.yaml")
    assert settings.public_url == "https://mock.example"
    assert settings.max_body_bytes == 2048
    assert settings.api_tokens == ("one", "two")
    assert settings.access_log is True


ENVIRON = {
    "MOCK_SERVER_HOST": "0.0.0.0",
    "MOCK_SERVER_PORT": "9124",
    "MOCK_SERVER_SEED": "5",
    "MOCK_SERVER_TIME_SCALE": "0.25",
    "MOCK_SERVER_FIXTURES": "/env/fx",
    "MOCK_SERVER_SPEC": "/env/spec.yaml",
    "MOCK_SERVER_PUBLIC_URL": "https://env.example",
    "MOCK_SERVER_API_TOKEN": "a, b",
    "MOCK_SERVER_MAX_BODY_BYTES": "4096",
    "MOCK_SERVER_ACCESS_LOG": "true",
}


def test_every_environment_variable() -> None:
    _, settings = cli.settings_from([], ENVIRON)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9124
    assert settings.seed == 5
    assert settings.time_scale == 0.25
    assert settings.fixtures_dir == Path("/env/fx")
    assert settings.spec_path == Path("/env/spec.yaml")
    assert settings.public_url == "https://env.example"
    assert settings.api_tokens == ("a", "b")
    assert settings.max_body_bytes == 4096
    assert settings.access_log is True


def test_field_named_variables_also_work() -> None:
    _, settings = cli.settings_from(
        [],
        {
            "MOCK_SERVER_FIXTURES_DIR": "/env/fx2",
            "MOCK_SERVER_SPEC_PATH": "/env/spec2.yaml",
            "MOCK_SERVER_API_TOKENS": "c",
        },
    )
    assert settings.fixtures_dir == Path("/env/fx2")
    assert settings.spec_path == Path("/env/spec2.yaml")
    assert settings.api_tokens == ("c",)


def test_flags_win_over_environment() -> None:
    argv = ["--host", "::1", "--port", "1", "--seed", "9", "--time-scale", "2"]
    argv += ["--fixtures", "/flag/fx", "--spec", "/flag/spec.yaml"]
    argv += ["--public-url", "http://flag", "--api-token", "z", "--max-body-bytes", "1"]
    _, settings = cli.settings_from(argv, ENVIRON)
    assert (settings.host, settings.port, settings.seed, settings.time_scale) == ("::1", 1, 9, 2.0)
    assert settings.fixtures_dir == Path("/flag/fx")
    assert settings.spec_path == Path("/flag/spec.yaml")
    assert settings.public_url == "http://flag"
    assert settings.api_tokens == ("z",)
    assert settings.max_body_bytes == 1
    assert settings.access_log is True  # not given as a flag: the variable still applies


def test_check_bundled_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check"]) == 0
    assert "11 model fixtures" in capsys.readouterr().out


@pytest.fixture
def broken_fixtures(tmp_path: Path) -> Callable[[str, Callable[[Fixture], None]], Path]:
    """A copy of the bundled fixtures with one model file edited."""

    def make(name: str, edit: Callable[[Fixture], None]) -> Path:
        folder = tmp_path / "fixtures"
        shutil.copytree(FIXTURES, folder)
        path = folder / "models" / "black-forest-labs" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return folder

    return make


def negative_setup(data: Fixture) -> None:
    data["timing"] = {"setup": -1, "predict": 1}


def default_outside_enum(data: Fixture) -> None:
    data["input_schema"]["properties"]["aspect_ratio"]["default"] = "7:3"


@pytest.mark.parametrize(
    ("name", "edit", "field"),
    [
        ("flux-dev", negative_setup, "timing.setup"),
        ("flux-2-pro", default_outside_enum, "input_schema.properties.aspect_ratio.default"),
    ],
)
def test_check_names_the_broken_file_and_field(
    broken_fixtures: Callable[[str, Callable[[Fixture], None]], Path],
    capsys: pytest.CaptureFixture[str],
    name: str,
    edit: Callable[[Fixture], None],
    field: str,
) -> None:
    folder = broken_fixtures(name, edit)
    assert cli.main(["check", "--fixtures", str(folder)]) == 1
    err = capsys.readouterr().err
    assert str(folder / "models" / "black-forest-labs" / f"{name}.yaml") in err
    assert field in err


def run_bounded(call: Callable[[], int], timeout: float = 10) -> int:
    """`main()` that would start serving never returns: fail instead of hanging."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "main() started serving instead of refusing the fixtures"
    return result[0]


def test_serve_refuses_bad_fixtures(
    broken_fixtures: Callable[[str, Callable[[Fixture], None]], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = broken_fixtures("flux-dev", negative_setup)
    monkeypatch.setenv("MOCK_SERVER_FIXTURES", str(folder))
    monkeypatch.setenv("MOCK_SERVER_PORT", "0")
    assert run_bounded(lambda: cli.main([])) == 1
    out, err = capsys.readouterr()
    assert "listening" not in out
    assert "flux-dev.yaml" in err
    assert "timing.setup" in err
    missing = str(folder / "missing")
    assert run_bounded(lambda: cli.main(["--port", "0", "--fixtures", missing])) == 1
    assert "models" in capsys.readouterr().err


def test_public_url_prefixes_every_url() -> None:
    _, settings = cli.settings_from(["--public-url", "https://mock.example/"], {})
    clock = ManualClock()
    with TestClient(create_app(settings, clock=clock)) as client:
        client.headers.update(AUTH)
        client.event_hooks = CHECKED
        created = client.post(CREATE, json={"input": {"prompt": "p", "num_outputs": 2}}).json()
        assert created["urls"]["get"] == (
            f"https://mock.example/replicate/v1/predictions/{created['id']}"
        )
        assert all(url.startswith("https://mock.example/") for url in created["urls"].values())
        clock.advance(60)
        done = client.get(urlsplit(created["urls"]["get"]).path).json()
        assert done["status"] == "succeeded"
        assert len(done["output"]) == 2
        for url in done["output"]:
            assert url.startswith("https://mock.example/delivery/")
            assert client.get(urlsplit(url).path).status_code == 200


def test_real_process_serves(tmp_path: Path) -> None:
    """`python -m mock_server --port 0 --time-scale 0`, at the URL it prints."""
    with (
        spawned_server("--time-scale", "0", log=tmp_path / "server.stderr") as (url, proc),
        httpx.Client(base_url=url, headers=AUTH, timeout=10, event_hooks=CHECKED) as http,
    ):
        spec = http.get("/openapi.yaml")
        assert spec.status_code == 200
        assert spec.text.startswith("openapi:")
        created = http.post(CREATE, json={"input": {"prompt": "from a process"}})
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "starting"
        assert created.json()["urls"]["get"].startswith(url + "/replicate/v1/predictions/")
        done = http.get(f"/replicate/v1/predictions/{created.json()['id']}").json()
        assert done["status"] == "succeeded"  # --time-scale 0 finishes at once
        assert proc.poll() is None


def test_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "--help"],
        cwd=PROJECT,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--time-scale" in result.stdout
    assert "MOCK_SERVER_" in result.stdout
