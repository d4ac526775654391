"""Status, timestamps, metrics and logs as pure functions of the record and the time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mock_server.lifecycle import metrics, state_at
from mock_server.logs import LogStyle, logs_at
from mock_server.models import Prediction, Status
from tests.records import T0, prediction

PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)", re.MULTILINE)
COG = LogStyle("cog-flux", "num_inference_steps", 4)


def record(**changes: object) -> Prediction:
    return prediction(**{"outputs": 2, **changes})


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        pytest.param(0.0, Status.STARTING, id="starting-at-0s"),
        pytest.param(0.999, Status.STARTING, id="starting-just-before-setup"),
        pytest.param(1.0, Status.PROCESSING, id="processing-at-1s"),
        pytest.param(3.0, Status.PROCESSING, id="processing-at-3s"),
        pytest.param(5.0, Status.SUCCEEDED, id="succeeded-at-5s"),
        pytest.param(3600.0, Status.SUCCEEDED, id="succeeded-an-hour-later"),
    ],
)
def test_status_follows_the_clock(elapsed: float, expected: Status) -> None:
    state = state_at(record(), T0 + timedelta(seconds=elapsed))
    assert state.status is expected
    assert (state.started_at is not None) == (elapsed >= 1.0)
    assert (state.completed_at is not None) == (elapsed >= 5.0)


def test_zero_timing_succeeds_on_the_first_later_read() -> None:
    p = record(setup_s=0.0, predict_s=0.0)
    assert state_at(p, T0).status is Status.SUCCEEDED


def test_cancel_while_processing_is_final() -> None:
    p = record(canceled_at=T0 + timedelta(seconds=2))
    for later in (2, 5, 100):
        state = state_at(p, T0 + timedelta(seconds=later))
        assert state.status is Status.CANCELED
        assert state.completed_at == T0 + timedelta(seconds=2)
        assert state.started_at == T0 + timedelta(seconds=1)
    m = metrics(p, state_at(p, T0 + timedelta(seconds=9)))
    assert m == {"predict_time": 1.0, "total_time": 2.0}


def test_cancel_while_starting_has_no_start() -> None:
    p = record(canceled_at=T0 + timedelta(seconds=0.5))
    state = state_at(p, T0 + timedelta(seconds=10))
    assert state.status is Status.CANCELED
    assert state.started_at is None


def test_cancel_after_the_finish_changes_nothing() -> None:
    p = record(canceled_at=T0 + timedelta(seconds=6))
    assert state_at(p, T0 + timedelta(seconds=7)).status is Status.SUCCEEDED


def test_metrics_on_success() -> None:
    p = record()
    assert metrics(p, state_at(p, T0 + timedelta(seconds=2))) == {}
    assert metrics(p, state_at(p, T0 + timedelta(seconds=9))) == {
        "predict_time": 4.0,
        "total_time": 5.0,
        "image_count": 2,
    }


def test_logs_show_rising_progress_the_clients_can_parse() -> None:
    p = record()
    seen = []
    for elapsed in (1.0, 2.0, 3.0, 4.0, 4.9, 6.0):
        logs = logs_at(p, state_at(p, T0 + timedelta(seconds=elapsed)), COG)
        last = PROGRESS.findall(logs)[-1]
        seen.append(int(last[0]))
        assert logs.startswith("Using seed: ")
    assert seen == sorted(seen)
    assert seen[0] == 0
    assert seen[-1] == 100
    assert logs.rstrip().endswith("Total safe images: 2 out of 2")


def test_logs_are_cumulative_and_empty_while_starting() -> None:
    p = record()
    assert logs_at(p, state_at(p, T0), COG) == ""
    early = logs_at(p, state_at(p, T0 + timedelta(seconds=2)), COG)
    late = logs_at(p, state_at(p, T0 + timedelta(seconds=4)), COG)
    assert late.startswith(early)


def test_logs_use_the_input_seed_and_step_count() -> None:
    p = record(input={"prompt": "x", "seed": 1234, "num_inference_steps": 2})
    logs = logs_at(p, state_at(p, T0 + timedelta(seconds=10)), COG)
    assert "Using seed: 1234\n" in logs
    assert PROGRESS.findall(logs)[-1] == ("100", "2", "2")


def test_bfl_style_logs() -> None:
    p = record(model="black-forest-labs/flux-pro")
    logs = logs_at(p, state_at(p, T0 + timedelta(seconds=10)), LogStyle("bfl", None, 20))
    assert "Generating 1024x1024 image" in logs
    assert PROGRESS.findall(logs)[-1] == ("100", "20", "20")
