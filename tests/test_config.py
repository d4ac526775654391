"""Settings from the environment, and the clock mode a server reports for the clock it runs on."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock, SystemClock
from mock_server.config import SettingsError
from tests.conftest import AUTH


def test_create_app_without_settings_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`uvicorn --factory mock_server.app:create_app` calls it with no arguments."""
    monkeypatch.setenv("MOCK_SERVER_TIME_SCALE", "0.5")
    monkeypatch.setenv("MOCK_SERVER_SEED", "9")
    monkeypatch.setenv("MOCK_SERVER_CLOCK", "manual")
    monkeypatch.setenv("MOCK_SERVER_API_TOKEN", "a,b")
    settings = create_app().state.ctx.settings
    assert (settings.time_scale, settings.seed, settings.clock) == (0.5, 9, "manual")
    assert settings.api_tokens == ("a", "b")


def test_an_injected_manual_clock_is_reported_as_manual() -> None:
    app = create_app(Settings(), clock=ManualClock())
    with TestClient(app, headers=AUTH) as client:
        assert client.get("/__admin/health").json()["clock"]["mode"] == "manual"
        moved = client.post("/__admin/clock", json={"advance": 5})
        assert moved.status_code == 200
        assert moved.json()["now"].startswith("2024-01-01T00:00:05")


def test_polls_stays_polls_on_a_manual_clock() -> None:
    app = create_app(Settings(clock="polls"), clock=ManualClock())
    assert app.state.ctx.timeline.mode.value == "polls"


def test_a_manual_setting_on_a_clock_nobody_can_move_runs_on_time() -> None:
    app = create_app(Settings(clock="manual"), clock=SystemClock())
    with TestClient(app, headers=AUTH) as client:
        assert client.get("/__admin/health").json()["clock"]["mode"] == "time"
        assert client.post("/__admin/clock", json={"advance": 5}).status_code == 409


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_the_stall_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(SettingsError, match="clock_stall_timeout"):
        Settings(clock_stall_timeout=value)


def test_the_scenarios_file_comes_from_the_environment() -> None:
    assert Settings.from_env({"MOCK_SERVER_SCENARIOS": "/x.yaml"}).scenarios_path == Path("/x.yaml")
