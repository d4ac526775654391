"""schemathesis against the emulator.

The main test is the command users run (README, "Contract testing"): the schemathesis CLI against
a real `python -m mock_server` process over HTTP, every check (negative data, missing and invalid
auth, status-code conformance, ...), every phase (examples, coverage, fuzzing, and stateful runs
that follow the spec's links: create -> get -> cancel -> get, create -> list, under both
prefixes), 300 examples per operation, a pinned seed. `make fuzz` runs the same without a seed.

A fast in-process run (`from_asgi`) comes first: positive data only, failures shown per operation
with the server's own traceback.

Both leave out the admin API (`/__admin`, tag `admin`): it resets the store, switches the clock and
adds scenarios that make the public API answer errors on purpose, so fuzzing it would change the
server under every other operation's tests.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from tests.conftest import AUTH, TOKEN

PROJECT = Path(__file__).resolve().parents[1]
# The venv's script, next to the interpreter (schemathesis has no `python -m` entry).
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# With this seed the stateful phase runs about 385 scenarios and follows every declared link under
# both prefixes (with some seeds Hypothesis ends that phase after a couple of dozen).
SEED = 1
MAX_EXAMPLES = 300
# About 130 s on a 2-core machine; the bound keeps a hung run from holding CI for long.
CLI_TIMEOUT_S = 420

# --------------------------------------------------------------------- in process (fast)

# time_scale 0: predictions finish as soon as they are read again, so output links are exercised.
# One accepted token, so schemathesis's invalid-credentials probe is refused with 401.
# The admin API is left out here as in the CLI run below (it changes the shared app's state).
schema = schemathesis.openapi.from_asgi(
    "/openapi.yaml",
    create_app(Settings(time_scale=0, api_tokens=(TOKEN,)), clock=ManualClock()),
).exclude(tag="admin")
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers=AUTH)


# --------------------------------------------------------------------- live server, CLI


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    """`python -m mock_server --port 0 --time-scale 0 --api-token TOKEN`; its URL from stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_SERVER_")}
    log = (tmp_path / "server.stderr").open("w")  # a 5xx's traceback lands here
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_server",
            "--port",
            "0",
            "--time-scale",
            "0",
            "--api-token",
            TOKEN,
        ],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    assert stdout is not None

    def pump() -> None:
        for text in stdout:
            lines.put(text)

    threading.Thread(target=pump, daemon=True).start()
    try:
        try:
            line = lines.get(timeout=10)
        except queue.Empty:
            pytest.fail("the server printed no URL within 10 s")
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, f"no URL in {line!r}"
        yield match.group(0)
        assert proc.poll() is None, "the server exited during the run"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stdout.close()
        log.close()


def test_schemathesis_cli_all_checks_all_phases(server_url: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server_url}/openapi.yaml",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        # The admin API resets the store, switches clocks and adds scenarios that make the public
        # API answer errors on purpose: fuzzing it would change the server under the other tests.
        "--exclude-tag",
        "admin",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        # Timing-based, so not reproducible by the seed; a loaded CI machine must not fail on it.
        "--suppress-health-check",
        "too_slow",
        "--generation-database",
        "none",
        "--no-color",
    ]
    started = time.monotonic()
    try:
        # cwd: schemathesis and hypothesis write their caches (.schemathesis, .hypothesis) there.
        result = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"schemathesis ran over {CLI_TIMEOUT_S} s; its output ends:\n{out[-6000:]}")
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    stderr = (tmp_path / "server.stderr").read_text()
    assert result.returncode == 0, (
        f"schemathesis exited {result.returncode} after {elapsed:.0f} s; its output ends:\n"
        f"{output[-8000:]}\nserver stderr:\n{stderr[-4000:]}"
    )
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary, output[-2000:]
    # Every public operation ran (18 of them), hundreds of cases each.
    assert int(summary.group(1)) >= 18 * 100, summary.group(0)
    scenarios = re.search(r"Scenarios:\s+(\d+)", output)
    assert scenarios, output[-2000:]
    assert int(scenarios.group(1)) >= 100, f"a thin stateful phase: {scenarios.group(0)}"
    assert "Traceback" not in stderr, stderr[-4000:]
