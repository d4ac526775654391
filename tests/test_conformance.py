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
server under every other operation's tests. The last test runs the CLI on the admin API alone,
against a server of its own (`--clock manual`, an admin token).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.spec import load_spec
from tests.conftest import AUTH, TOKEN, spawned_server

# The venv's script, next to the interpreter (schemathesis has no `python -m` entry).
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# With this seed the stateful phase runs about 385 scenarios and follows every declared link under
# both prefixes (with some seeds Hypothesis ends that phase after a couple of dozen).
SEED = 1
MAX_EXAMPLES = 300
# About 130 s on a 2-core machine; the bound keeps a hung run from holding CI for long.
CLI_TIMEOUT_S = 420
# The admin run: about 2500 cases in about 30 s. (Seed 2 drew only 40 stateful scenarios once
# `adminListWebhooks` joined the admin operations; seeds 1 and 3 draw more than 50.)
ADMIN_TOKEN = "r8_admin_token"
ADMIN_SEED = 3
ADMIN_MAX_EXAMPLES = 300
ADMIN_TIMEOUT_S = 180

# --------------------------------------------------------------------- in process (fast)

# time_scale 0: predictions finish as soon as they are read again, so output links are exercised.
# One accepted token, so schemathesis's invalid-credentials probe is refused with 401.
# The admin API is left out here as in the CLI run below (it changes the shared app's state).
schema = schemathesis.openapi.from_asgi(
    "/openapi.yaml",
    create_app(Settings(time_scale=0, api_tokens=(TOKEN,), webhooks="record"), clock=ManualClock()),
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


def schemathesis_cli(
    tmp_path: Path,
    server_args: tuple[str, ...],
    *options: str,
    token: str,
    max_examples: int,
    seed: int,
    timeout: float,
) -> tuple[int, int, str]:
    """`python -m mock_server --port 0 *server_args` in a process of its own, then `schemathesis
    run URL/openapi.yaml` with every check and phase, `options`, and `token` as the bearer token.

    Returns (test cases generated, stateful scenarios, output). Fails on a nonzero exit, a run over
    `timeout` s, or a traceback in the server's stderr (where a 5xx's lands).
    """
    log = tmp_path / "server.stderr"
    with spawned_server(*server_args, log=log) as (url, proc):
        command = [
            str(SCHEMATHESIS),
            "run",
            f"{url}/openapi.yaml",
            "--header",
            f"Authorization: Bearer {token}",
            *options,
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--workers",
            "1",
            # Timing-based, so not reproducible by the seed; a loaded machine must not fail on it.
            "--suppress-health-check",
            "too_slow",
            "--generation-database",
            "none",
            "--no-color",
        ]
        started = time.monotonic()
        try:
            # cwd: schemathesis and hypothesis write their caches (.schemathesis, .hypothesis).
            result = subprocess.run(
                command, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            pytest.fail(f"schemathesis ran over {timeout:.0f} s; its output ends:\n{out[-6000:]}")
        elapsed = time.monotonic() - started
        assert proc.poll() is None, "the server exited during the run"
    output = result.stdout + result.stderr
    stderr = log.read_text()
    assert result.returncode == 0, (
        f"schemathesis exited {result.returncode} after {elapsed:.0f} s; its output ends:\n"
        f"{output[-8000:]}\nserver stderr:\n{stderr[-4000:]}"
    )
    assert "Traceback" not in stderr, stderr[-4000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary, output[-2000:]
    scenarios = re.search(r"Scenarios:\s+(\d+)", output)
    assert scenarios, output[-2000:]
    return int(summary.group(1)), int(scenarios.group(1)), output


def test_schemathesis_cli_all_checks_all_phases(tmp_path: Path) -> None:
    """The public API on `--time-scale 0 --api-token TOKEN`."""
    generated, scenarios, output = schemathesis_cli(
        tmp_path,
        # Fuzzed creates carry random webhook URLs: record them, never send (loopback only).
        ("--time-scale", "0", "--api-token", TOKEN, "--webhooks", "record"),
        # The admin API resets the store, switches clocks and adds scenarios that make the public
        # API answer errors on purpose: fuzzing it would change the server under the other tests.
        # test_schemathesis_cli_admin_api runs it on a server of its own.
        "--exclude-tag",
        "admin",
        token=TOKEN,
        max_examples=MAX_EXAMPLES,
        seed=SEED,
        timeout=CLI_TIMEOUT_S,
    )
    # Every public operation ran (18 of them), hundreds of cases each.
    assert generated >= 18 * 100, output[-2000:]
    assert scenarios >= 100, f"a thin stateful phase: {scenarios} scenarios"


def admin_operations() -> int:
    """How many operations openapi.yaml tags `admin`."""
    paths = load_spec(Settings().spec_path).document["paths"]
    return sum(
        "admin" in op.get("tags", ())
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
    )


def test_schemathesis_cli_admin_api(tmp_path: Path) -> None:
    """The admin API (tag `admin`) alone, on a server of its own: its resets, clock moves and
    scenarios reach no other test. With no public operation in the run nothing waits on the
    manual clock (sync creates and streams are public) and no run-time scenario (up to 60 s of
    latency, any 4xx or 5xx) touches a request.

    The manual clock lets `POST /__admin/clock` answer 200 until a reset switches the mode. The
    spec's admin security is `[{}, {adminBearer: []}]` (the token is needed only when the server
    has one), so schemathesis leaves out `ignored_auth` here: tests/test_admin.py covers the 401s.
    It also covers forcing a prediction: here `POST /__admin/predictions/{id}/{action}` never
    finds one (404), as no prediction is created.
    """
    generated, scenarios, output = schemathesis_cli(
        tmp_path,
        ("--clock", "manual", "--admin-token", ADMIN_TOKEN, "--api-token", TOKEN),
        "--include-tag",
        "admin",
        token=ADMIN_TOKEN,
        max_examples=ADMIN_MAX_EXAMPLES,
        seed=ADMIN_SEED,
        timeout=ADMIN_TIMEOUT_S,
    )
    admin = admin_operations()
    assert f"Tested: {admin}" in output, output[-2000:]  # every admin operation
    assert generated >= admin * 100, output[-2000:]
    assert scenarios >= 50, f"a thin stateful phase: {scenarios} scenarios"
