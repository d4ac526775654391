"""The package as users get it: the wheel, built from this tree and installed into a fresh virtual
environment outside it, then used from there (the CLI, the server, `uvicorn --factory`, the
README's install steps (its git URL and path installs), and the pytest plugin with the official
client in a throwaway project, with the `[pytest]` extra and without it).

The fresh environments install from the wheelhouse `make install` fills (`.venv/wheelhouse`), so
these tests need no network.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from PIL import Image

from tests.conftest import PROJECT, child_environ, spawned_server

WHEELHOUSE = PROJECT / ".venv" / "wheelhouse"
INSTALL_S = 300  # a pip install or wheel build that takes longer has hung
TOKEN = {"Authorization": "Bearer r8_wheel"}
FIRST_TEST_S = 5.0  # the longest a user's first test (`replicate.run`, no marker) may take


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env if env is not None else child_environ(),
        capture_output=True,
        text=True,
        timeout=INSTALL_S,
    )
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def offline_pip() -> dict[str, str]:
    """pip takes everything from the wheelhouse, build environments included."""
    if not WHEELHOUSE.is_dir():
        pytest.fail(f"{WHEELHOUSE} is missing: run `make install` (it fetches the wheels once)")
    return {**child_environ(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}


def fresh_venv(where: Path, *, with_pip: bool = True) -> Path:
    """A new venv; `with_pip=False` leaves pip out (seconds faster): `pip_into` installs into it."""
    flags = () if with_pip else ("--without-pip",)
    run(sys.executable, "-m", "venv", *flags, where, cwd=where.parent)
    return where


def pip_into(venv: Path, *requirements: str | Path) -> None:
    """This venv's pip installs into another venv (`pip --python`), from the wheelhouse."""
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet")
    run(*pip, *requirements, cwd=venv.parent, env=offline_pip())


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the source tree that every xdist worker of this run shares."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    path = base.parent / f"wheel-{run_id}" if run_id else base / "wheel"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def installed(shared_dir: Path) -> Installed:
    """The wheel built once per run and installed with its `[pytest]` extra, the official Python
    client 1.x and pytest-xdist into a fresh venv (the first worker builds, the others wait)."""
    with (shared_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, before any test runs
        if not (shared_dir / "done").exists():
            build(shared_dir)
    return Installed(Path((shared_dir / "done").read_text()), shared_dir / "venv")


def build(shared_dir: Path) -> None:
    env = offline_pip()
    dist = shared_dir / "dist"
    wheel_cmd = ("pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, PROJECT)
    run(sys.executable, "-m", *wheel_cmd, cwd=shared_dir, env=env)
    wheel = next(dist.glob("replicate_flux_emulator-*.whl"))
    venv = fresh_venv(shared_dir / "venv")
    pip = (venv / "bin" / "pip", "install", "--quiet")
    packages = (f"{wheel}[pytest]", "replicate>=1.0,<1.1", "pytest-xdist")
    run(*pip, *packages, cwd=shared_dir, env=env)
    (shared_dir / "done").write_text(str(wheel))


def test_the_wheel_carries_the_contract_and_fixtures_once(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    data = sorted(n for n in names if not n.endswith(".py") and "dist-info" not in n)
    models = sorted((PROJECT / "fixtures" / "models").rglob("*.yaml"))
    assert data == sorted(
        [
            "mock_server/_data/openapi.yaml",
            "mock_server/_data/examples/scenarios.yaml",
            *(f"mock_server/_data/fixtures/{m.relative_to(PROJECT / 'fixtures')}" for m in models),
            # the demo page at `/`
            "mock_server/static/demo.css",
            "mock_server/static/demo.js",
            "mock_server/static/index.html",
        ]
    )
    assert len(models) == 11
    # Nothing in git is a second copy of these files.
    tracked = run("git", "ls-files", cwd=PROJECT).split()
    assert not [t for t in tracked if "/_data/" in t]


def test_check_runs_from_the_installed_package(installed: Installed, tmp_path: Path) -> None:
    out = run(installed.bin("mock-server"), "check", cwd=tmp_path)
    assert "site-packages/mock_server/_data/openapi.yaml" in out
    assert "11 model fixtures" in out


def test_the_installed_server_creates_and_serves_an_image(
    installed: Installed, tmp_path: Path
) -> None:
    command = (installed.bin("mock-server"), "--port", "0", "--time-scale", "0")
    with (
        spawned_server(log=tmp_path / "log", command=command, cwd=tmp_path) as (url, _),
        httpx.Client(base_url=url, headers=TOKEN, timeout=10) as http,
    ):
        created = http.post(
            "/v1/models/black-forest-labs/flux-1.1-pro/predictions",
            json={"input": {"prompt": "a wheel", "aspect_ratio": "16:9"}},
        )
        assert created.status_code == 201, created.text
        p = http.get(f"/v1/predictions/{created.json()['id']}").json()
        assert p["status"] == "succeeded"
        image = http.get(p["output"])
        page, script = http.get("/"), http.get("/static/demo.js")  # the demo page, from the wheel
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert 'src="static/demo.js"' in page.text
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert image.status_code == 200
    with Image.open(io.BytesIO(image.content)) as img:
        assert (img.format, img.size) == ("WEBP", (1344, 768))


def test_uvicorn_factory_reads_the_environment(installed: Installed, tmp_path: Path) -> None:
    env = {**child_environ(), "MOCK_SERVER_TIME_SCALE": "0.25", "MOCK_SERVER_SEED": "42"}
    command = [installed.bin("uvicorn"), "--factory", "mock_server.app:create_app", "--port", "0"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "uvicorn exited before it was running"
            if match := re.search(r"running on (http://127\.0\.0\.1:\d+)", line):
                url = match.group(1)
        assert url, "uvicorn did not say where it runs"
        health = httpx.get(f"{url}/__admin/health", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (health["time_scale"], health["seed"]) == (0.25, 42)


def readme_block(title: str) -> str:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"## {title}\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def readme_install(block: str, marker: str) -> str:
    """The README block's install line that contains `marker`, its comment left out."""
    line = next(ln for ln in block.splitlines() if marker in ln)
    return line.split("#", 1)[0].strip()


def installed_from(venv: Path, cwd: Path) -> dict[str, Any]:
    """Where pip says it took the package from (PEP 610's direct_url.json)."""
    code = (
        "import importlib.metadata as m\n"
        "print(m.distribution('replicate-flux-emulator').read_text('direct_url.json'))"
    )
    out = run(venv / "bin" / "python", "-c", code, cwd=cwd)
    found: dict[str, Any] = json.loads(out)
    return found


def test_the_readmes_install_steps_work(tmp_path: Path) -> None:
    """The README's git URL and path installs, each run as written into one fresh venv (uninstalled
    in between, so that each really installs it). The git URL is a clone of this repository's HEAD
    (committed files only, as a user's clone) with its `main` there, reached as `file://`."""
    block = readme_block("Install it into your project")
    clone = tmp_path / "clone"
    run("git", "clone", "--quiet", PROJECT, clone, cwd=tmp_path)
    run("git", "checkout", "--quiet", "-B", "main", cwd=clone)  # whatever HEAD's branch is
    head = run("git", "rev-parse", "HEAD", cwd=clone).strip()
    # `localhost`: pip takes no `git+file:///path` (a URL requirement needs a host).
    git_line, hosts = re.subn(
        r"git\+https://[^@'\s]+", f"git+file://localhost{clone}", readme_install(block, "@ git+")
    )
    assert hosts == 1, git_line
    path_line = readme_install(block, "/path/to/mock_server[").replace(
        "/path/to/mock_server", str(PROJECT)
    )
    venv = fresh_venv(tmp_path / "venv")
    env = {**offline_pip(), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}

    def install(command: str) -> None:
        subprocess.run(command, shell=True, cwd=tmp_path, env=env, check=True, timeout=INSTALL_S)

    install(git_line)
    source = installed_from(venv, tmp_path)
    assert source["vcs_info"] == {"vcs": "git", "requested_revision": "main", "commit_id": head}
    assert "11 model fixtures" in run(venv / "bin" / "mock-server", "check", cwd=tmp_path)
    run(venv / "bin" / "pip", "uninstall", "-qy", "replicate-flux-emulator", cwd=tmp_path)

    install(path_line)
    assert installed_from(venv, tmp_path)["url"] == PROJECT.as_uri()
    out = run(venv / "bin" / "mock-server", "check", cwd=tmp_path)
    assert "11 model fixtures" in out
    code = "import importlib.metadata as m; print(m.entry_points(group='pytest11'))"
    assert "mock_server.pytest_plugin" in run(venv / "bin" / "python", "-c", code, cwd=tmp_path)


USER_TESTS = """
import pytest
import replicate


def test_first(mock_server):
    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert len(output) == 1
    assert output[0].startswith(mock_server.url + "/delivery/")


@pytest.mark.parametrize("model", ["flux-dev", "flux-2-pro", "flux-kontext-pro"])
def test_models(mock_server, model):
    assert replicate.run("black-forest-labs/" + model, input={"prompt": model})


def test_in_process(mock_client):
    r = mock_client.post(
        "/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "x"}},
        headers={"Prefer": "wait"},
    )
    assert r.json()["status"] == "succeeded"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_users_project_passes_with_no_configuration(
    installed: Installed, tmp_path: Path, workers: list[str]
) -> None:
    """A throwaway project with the package installed: its tests call the official client with no
    marker and no conftest, under `-W error` and with xdist."""
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n'
    )
    env = {k: v for k, v in child_environ().items() if not k.startswith("REPLICATE_")}
    cmd = [
        installed.bin("python"),
        "-m",
        "pytest",
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        "--junitxml=report.xml",
        *workers,
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout
    # The first test a user writes passes quickly: its own time (set-up, the session's server
    # started for it, call and teardown, as pytest reports it), not the session's start-up.
    first = reported_time(tmp_path / "report.xml", "test_first")
    assert first < FIRST_TEST_S, f"test_first took {first:.2f} s"


def reported_time(report: Path, name: str) -> float:
    """A test's duration (set-up, call and teardown) from pytest's JUnit XML report."""
    (case,) = (c for c in ElementTree.parse(report).iter("testcase") if c.get("name") == name)
    return float(case.get("time", "nan"))


WITHOUT_EXTRA_TESTS = """
import httpx
import pytest
import replicate


def test_live(mock_server):
    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert output[0].startswith(mock_server.url + "/delivery/")


@pytest.mark.mock_server(clock="manual")
def test_live_on_the_manual_clock(mock_server):
    with httpx.Client(base_url=mock_server.v1_url, headers=mock_server.headers) as http:
        p = http.post(
            "/models/black-forest-labs/flux-dev/predictions", json={"input": {"prompt": "x"}}
        ).json()
        mock_server.advance(10)
        assert http.get(f"/predictions/{p['id']}").json()["status"] == "succeeded"


def test_in_process(mock_client):
    raise AssertionError("mock_client was given without httpx2")
"""


def test_the_plugin_without_the_pytest_extra(installed: Installed, tmp_path: Path) -> None:
    """The wheel without `[pytest]`, beside a project's own pytest and the official client: the
    plugin's live-server fixtures work under `-W error`, and `mock_client` (which needs httpx2)
    fails naming the extra to install."""
    venv = fresh_venv(tmp_path / "venv", with_pip=False)
    pip_into(venv, installed.wheel, "pytest", "replicate>=1.0,<1.1")
    python = venv / "bin" / "python"
    httpx2 = run(python, "-c", "import importlib.util as u; print(u.find_spec('httpx2'))", cwd=venv)
    assert httpx2 == "None\n"  # not installed: the extra brings it
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_user.py").write_text(WITHOUT_EXTRA_TESTS)
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n'
    )
    env = {k: v for k, v in child_environ().items() if not k.startswith("REPLICATE_")}
    cmd = [str(python), "-m", "pytest", "-W", "error", "-p", "no:cacheprovider"]
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    out = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 1, out
    assert "2 passed, 1 error" in done.stdout, out
    assert "ERROR at setup of test_in_process" in done.stdout, out
    assert "mock_client needs httpx2: pip install 'replicate-flux-emulator[pytest]'" in done.stdout
