"""`make bench` stays runnable: its smoke mode (`python -m bench.run --smoke`: every part, very
briefly) runs to the end and writes every section of the JSON report with numbers in it.

Nothing here asserts a timing: the figures of a smoke run mean nothing. The bench needs wrk and
redis-server (`make test` installs both); without them the test fails, never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # about a minute on an idle 2-core machine; the rest is for a busy CI runner
HTTP_SECTIONS = ("uvicorn memory 1w", "uvicorn redis 1w", "uvicorn redis 2w")
CASES = {"create", "get_running", "get_finished", "list", "image"}
RENDERS = {f"{fmt}_{size}" for fmt in ("webp", "jpg", "png") for size in ("1MP", "4MP")}


def run_smoke(output: Path) -> str:
    """The smoke run in its own process group, killed whole if it outlives TIMEOUT_S."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"the smoke bench ran past {TIMEOUT_S} s:\n{log[-5000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log[-5000:]
    return log


def check_wrk(result: dict[str, Any], where: str) -> None:
    for key in ("rps", "p50_ms", "p99_ms", "requests"):
        assert result[key] > 0, (where, key, result)
    assert result["errors"] == 0, (where, "socket errors or non-2xx answers", result)


def test_smoke_bench_writes_every_section(tmp_path: Path) -> None:
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None and not os.access(f"/usr/bin/{tool}", os.X_OK):
            pytest.fail(
                f"{tool} is not installed: run `make test` (it installs it) or "
                f"`apt-get install -y {tool}`. The bench test is never skipped."
            )
    output = tmp_path / "bench.json"
    log = run_smoke(output)
    assert output.is_file(), log[-5000:]
    data = json.loads(output.read_text())

    assert data["settings"]["smoke"] is True
    assert data["machine"]["cpus"] > 0
    assert data["machine"]["python"]
    assert data["versions"]["uvicorn"]
    assert len(data["load_average"]["start"]) == len(data["load_average"]["end"]) == 3
    assert data["wall_seconds"] > 0

    for name in HTTP_SECTIONS:
        cases = data["http"][name]["cases"]
        assert set(cases) == CASES, name
        for key, case in cases.items():
            check_wrk(case["emulator"], f"{name} {key} emulator")
            check_wrk(case["baseline"], f"{name} {key} baseline")
            assert case["ratio_rps"] > 0
            assert case["body_bytes"] > 0
    granian = data["http"]["granian memory 1w"]
    if "skipped" in granian:  # granian is the bench's optional extra: not a test dependency
        assert granian["skipped"]
    else:
        assert set(granian["cases"]) == {"create", "get_finished"}
        for key, case in granian["cases"].items():
            check_wrk(case["emulator"], f"granian {key} emulator")

    sizes = data["store_size"]
    small, big = sizes["sizes"]
    for count in (small, big):
        assert sizes[str(count)]["fill"]["count"] == count
        check_wrk(sizes[str(count)]["get"], f"get with {count} stored")
        check_wrk(sizes[str(count)]["create"], f"create with {count} stored")
    assert sizes["get_rps_ratio"] > 0
    assert sizes["create_rps_ratio"] > 0

    memory = data["memory"]
    assert set(memory["memory_store"]) == {str(c) for c in data["settings"]["rss_counts"]}
    for row in memory["memory_store"].values():
        assert row["bytes_per_prediction"] > 0
    (redis_row,) = memory["redis_store"].values()
    assert redis_row["bytes_per_prediction"] > 0

    assert set(data["render"]) == RENDERS
    for row in data["render"].values():
        assert row["first_ms"] > 0
        assert row["served_ms"] > 0

    names = [t["name"] for t in data["targets"]]
    assert len(names) == 16, names
    assert all(isinstance(t["met"], bool) and t["value"] > 0 for t in data["targets"])
    assert "targets met" in log
