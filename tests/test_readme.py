"""README.md as a newcomer uses it: every fenced code block runs (or, where it cannot run here,
is checked another way), and the generated tables match the code.

How a block is tested is its kind. A `sh`, `python` or `js` block runs as written by default;
otherwise an HTML comment on the line right before its fence names the kind:

    <!-- readme-test: KIND [ARGS] -->                  a way of running it
    <!-- readme-test: KIND [ARGS]; not run: REASON -->  a check instead, and why it cannot run

Kinds that run the block (each on a server of its own, free port, started with ARGS as flags;
`http://127.0.0.1:8000`, `127.0.0.1:8000` and `localhost:8000` become the server's address):

- `run` (the default): `sh` in bash (`set -euo pipefail`, curl failing on an HTTP error), `python`
  with the official client 1.x installed here, `js` with node and the npm client (.venv/js);
- `stainless`: `python` with the Stainless-generated client, in the venv of its own that
  tests/test_official_clients.py builds;
- `pytest`: a test file, run with pytest and the plugin; `conftest`: a conftest.py, run with a test
  that uses its fixtures;
- `scenarios`: `jsonc` scenario rules, each POSTed to `/__admin/scenarios`;
- `serve`: shell lines, where each `mock-server` that serves is started (free port) and must
  answer `/__admin/health`;
- `shared-server`: a server line and a `pytest --mock-server-url` line, both run;
- `output-of CMD`: a `text` block that is what CMD prints;
- `github-actions`: a workflow, parsed and checked, its background-process job's start and wait
  steps run.

Kinds that check without running: `make` (the targets exist), `install` (names against
pyproject.toml; tests/test_wheel.py runs the git URL and path installs), `docker` (against the
Dockerfile, compose.yaml and the settings), `commands` (`mock-server` flags parse, named files
exist), `schemathesis` (the installed schemathesis takes every option). A block of another
language, or with an unknown kind, fails: nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from mock_server import docs
from mock_server.cli import build_parser, settings_from
from mock_server.config import _FLAG_NAMES, ENV_PREFIX, Settings
from tests import test_official_clients, test_wheel
from tests.conftest import PROJECT, child_environ, spawned_server
from tests.redis_server import free_port

# The Stainless client's venv and the npm client, as tests/test_official_clients.py has them.
shared_dir = test_wheel.shared_dir
stainless_python = test_official_clients.stainless_python
node_modules = test_official_clients.node_modules

README = PROJECT / "README.md"
BIN = Path(sys.executable).parent  # the venv's scripts: mock-server, pytest, schemathesis
BLOCK_S = 90  # a block that runs longer has hung
START_S = 20  # a server that prints nothing for this long has hung
ANNOTATION = re.compile(r"<!-- readme-test: (.*?) -->")
NOT_RUN = "not run:"
# Before each sh block: stop at the first failure, and a curl that gets an HTTP error fails.
SH_PRELUDE = """\
set -euo pipefail
curl() { command curl --fail-with-body --silent --show-error --max-time 30 "$@"; }
"""
ADMIN_TOKEN = "r8_readme_admin"


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    kind: str | None  # None: no annotation and no default for the language
    args: tuple[str, ...]
    reason: str | None  # why it is not run, for the kinds that only check

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.kind or 'unknown'}-{self.lang or 'plain'}"


DEFAULT_KIND = {"sh": "run", "python": "run", "js": "run"}


def parse_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        start, lang = i, lines[i][3:].strip().split(" ")[0]
        end = next(j for j in range(i + 1, len(lines)) if lines[j] == "```")
        code = "\n".join(lines[start + 1 : end]) + "\n"
        note = ANNOTATION.fullmatch(lines[start - 1]) if start else None
        kind: str | None = DEFAULT_KIND.get(lang)
        args: tuple[str, ...] = ()
        reason = None
        if note:
            spec, _, rest = note.group(1).partition(";")
            words = shlex.split(spec)
            kind, args = words[0], tuple(words[1:])
            rest = rest.strip()
            if rest:
                assert rest.startswith(NOT_RUN), f"README.md:{start}: expected '; {NOT_RUN} ...'"
                reason = rest.removeprefix(NOT_RUN).strip()
        blocks.append(Block(start + 1, lang, code, kind, args, reason))
        i = end + 1
    return blocks


TEXT = README.read_text(encoding="utf-8")
BLOCKS = parse_blocks(TEXT)


def commands(code: str) -> list[list[str]]:
    """A shell block's commands (continuation lines joined, comments dropped), as words."""
    joined = code.replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


# --- running things -------------------------------------------------------------------------------


def environ(**extra: str) -> dict[str, str]:
    """No developer's REPLICATE_* or MOCK_SERVER_* settings; the venv's scripts first on PATH."""
    env = {k: v for k, v in child_environ().items() if not k.startswith("REPLICATE_")}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


def execute(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd,
            env=env or environ(),
            capture_output=True,
            text=True,
            timeout=BLOCK_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd} ran over {BLOCK_S} s:\n{exc.stdout!r}\n{exc.stderr!r}")
    assert done.returncode == 0, (
        f"{cmd} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


@contextmanager
def live(tmp_path: Path, *flags: str) -> Iterator[str]:
    """`python -m mock_server --port 0 *flags`; yields its URL. Its stderr must stay free of
    tracebacks (a 5xx)."""
    log = tmp_path / "server.log"
    with spawned_server(*flags, log=log) as (url, _):
        yield url
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def localize(code: str, url: str) -> str:
    """The block with the README's server address replaced by the live server's."""
    hostport = url.removeprefix("http://")
    code = code.replace("http://127.0.0.1:8000", url)
    return code.replace("127.0.0.1:8000", hostport).replace("localhost:8000", hostport)


def journal(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/__admin/requests", timeout=10)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def check_downloads(block: Block, where: Path) -> None:
    """Every `curl -o FILE` left an image, of a size the block names."""
    for name in re.findall(r"-o\s+(\S+)", block.code):
        path = where / name
        assert path.is_file(), f"the block downloads {name}, which is missing"
        with Image.open(path) as img:
            size = f"{img.size[0]}x{img.size[1]}"
        assert size in block.code, f"{name} is {size}, which the block does not say"


def lines_of(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first `count` lines a process prints, within START_S."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    got: list[str] = []
    deadline = time.monotonic() + START_S
    while len(got) < count:
        try:
            got.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"the process printed {got} within {START_S} s, not {count} lines")
    return got


def stop(pid: int) -> None:
    """SIGTERM to a process this test started (not a child: a shell's background job), then wait
    for its exit (a pidfd becomes readable) up to 10 s, then SIGKILL."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([fd], [], [], 10)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)


# --- the kinds that run a block -------------------------------------------------------------------


def run_block(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with live(tmp_path, *block.args) as url:
        code = localize(block.code, url)
        assert code != block.code, "the block never names the server (http://127.0.0.1:8000)"
        if block.lang == "sh":
            (tmp_path / "block.sh").write_text(SH_PRELUDE + code)
            execute(["bash", "block.sh"], tmp_path)
            check_downloads(block, tmp_path)
            return
        if block.lang == "python":
            python = (
                request.getfixturevalue("stainless_python")
                if block.kind == "stainless"
                else Path(sys.executable)
            )
            (tmp_path / "block.py").write_text(code)
            execute([str(python), "block.py"], tmp_path)
        elif block.lang == "js":
            modules: Path = request.getfixturevalue("node_modules")
            (tmp_path / "node_modules").symlink_to(modules, target_is_directory=True)
            (tmp_path / "app.mjs").write_text(code)
            execute(["node", "app.mjs"], tmp_path, environ(NODE_NO_WARNINGS="1"))
        else:
            pytest.fail(f"a {block.kind} block must be sh, python or js, not {block.lang!r}")
        assert journal(url), "the client sent the server no request"


def pytest_in(where: Path, *args: str) -> str:
    """pytest in a throwaway project, with warnings as errors but ResourceWarning (as this
    project's own settings: replicate 1.x's `Client` has no `close()` for its httpx client)."""
    warnings = ["-W", "error", "-W", "ignore::ResourceWarning"]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *warnings, *args]
    return execute(cmd, where)


def run_pytest(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "python"
    (tmp_path / "test_block.py").write_text(block.code)
    out = pytest_in(tmp_path)
    tests = len(re.findall(r"^def test_", block.code, re.MULTILINE))
    assert f"{tests} passed" in out, out


CONFTEST_USER = """
def test_the_fixtures_run_a_model(client, emulator_url):
    output = client.run("black-forest-labs/flux-schnell", input={"prompt": "a fox"})
    assert str(output[0]).startswith(emulator_url + "/delivery/")
    prediction = client.predictions.create(
        model="black-forest-labs/flux-dev", input={"prompt": "polled"}
    )
    prediction.wait()
    assert prediction.status == "succeeded"
"""


def run_conftest(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "python"
    (tmp_path / "conftest.py").write_text(block.code)
    (tmp_path / "test_user.py").write_text(CONFTEST_USER)
    assert "1 passed" in pytest_in(tmp_path)


def jsonc_objects(code: str) -> list[dict[str, Any]]:
    """The JSON objects of a jsonc block, one after another, `//` comment lines left out."""
    text = "\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith("//"))
    decoder, objects, at = json.JSONDecoder(), [], 0
    while rest := text[at:].lstrip():
        at = len(text) - len(rest)
        value, at = decoder.raw_decode(text, at)
        objects.append(value)
    return objects


def run_scenarios(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "jsonc"
    rules = jsonc_objects(block.code)
    assert len(rules) >= 2
    with live(tmp_path, *block.args) as url:
        for rule in rules:
            added = httpx.post(f"{url}/__admin/scenarios", json=rule, timeout=10)
            assert added.is_success, (rule, added.text)
        listed = httpx.get(f"{url}/__admin/scenarios", timeout=10).json()
    names = {s["name"] for s in listed["scenarios"]}
    assert {r["name"] for r in rules} <= names, listed


def serve_args(words: list[str]) -> list[str]:
    """A `mock-server` command's flags, with its port made free (0)."""
    args = list(words[1:])
    if "--port" in args:
        args[args.index("--port") + 1] = "0"
    else:
        args += ["--port", "0"]
    return args


def run_serve(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "sh"
    served = 0
    for words, line in zip(commands(block.code), block.code.splitlines(), strict=True):
        if words[0] == "mock-server" and words[1:2] not in (["check"], ["example-scenarios"]):
            command = (str(BIN / "mock-server"), *serve_args(words))
            log = tmp_path / f"serve-{served}.log"
            with spawned_server(log=log, command=command, cwd=tmp_path) as (url, _):
                assert httpx.get(f"{url}/__admin/health", timeout=10).status_code == 200
            served += 1
        else:
            execute(["bash", "-c", SH_PRELUDE + line], tmp_path)
    assert served, "the block starts no server"


def run_shared_server(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "sh"
    server, job = commands(block.code.replace('"$ADMIN"', ADMIN_TOKEN))
    assert server[0] == "mock-server", block.code
    assert job[0] == "pytest", block.code
    args = serve_args(server)
    # Every interface is for other machines' jobs; this test's job runs here.
    args[args.index("--host") + 1] = "127.0.0.1"
    command = (str(BIN / "mock-server"), *args)
    with spawned_server(log=tmp_path / "server.log", command=command, cwd=tmp_path) as (url, _):
        (tmp_path / "test_job.py").write_text(
            "import replicate\n\n\ndef test_job(mock_server):\n"
            '    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})\n'
            '    assert output[0].startswith(mock_server.url + "/delivery/")\n'
            "    assert mock_server.predictions()  # through the admin API, with its token\n"
        )
        job_args = [w.replace("http://mock-host:8000", url) for w in job[1:]]
        assert url in job_args, job
        assert "1 passed" in pytest_in(tmp_path, *job_args)


def run_output_of(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "text"
    assert block.args[0] == "mock-server", block.args
    first, *printed = block.code.splitlines()
    assert first == "$ " + " ".join(block.args)
    ca = tmp_path / "mock-server-ca.pem"
    cmd = [str(BIN / "mock-server"), *block.args[1:], "--port", "0", "--tls-ca-file", str(ca)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        got = lines_of(proc, len(printed))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            pipe.close()
    port = re.search(r"127\.0\.0\.1:(\d+)", got[0])
    assert port, got
    shown = [
        line.rstrip("\n")
        .replace(str(ca), "/tmp/mock-server-ca.pem")
        .replace(f"127.0.0.1:{port.group(1)}", "127.0.0.1:8000")
        for line in got
    ]
    assert shown == printed


def step_runs(job: dict[str, Any]) -> list[str]:
    return [str(s["run"]) for s in job["steps"] if "run" in s]


def waits_for_health(job: dict[str, Any]) -> bool:
    """A step polls /__admin/health a bounded number of times and fails when it never answers."""
    return any(
        "/__admin/health" in run and "seq" in run and "exit 1" in run for run in step_runs(job)
    )


def variables_valid(env: dict[str, str]) -> None:
    ours = {k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX)}
    assert set(ours) <= SETTINGS_VARIABLES, ours
    Settings.from_env(ours)  # the values parse


def run_github_actions(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert block.lang == "yaml"
    workflow = yaml.safe_load(block.code)
    assert workflow["name"]
    assert True in workflow or "on" in workflow, "no trigger (on:)"  # YAML 1.1 reads on: as True
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    kinds = set()
    for name, job in workflow["jobs"].items():
        assert job["runs-on"], name
        assert job["steps"], name
        runs = step_runs(job)
        assert waits_for_health(job), f"{name} does not wait for /__admin/health"
        for step in job["steps"]:
            variables_valid(step.get("env", {}))
            base = step.get("env", {}).get("REPLICATE_BASE_URL")
            if base:  # Python client 1.x: the base URL without /v1
                assert base == "http://127.0.0.1:8000/replicate", base
        if "services" in job:
            (service,) = job["services"].values()
            assert service["image"].endswith(f"/replicate-flux-emulator:{version}"), service
            assert "8000:8000" in service["ports"], service
            variables_valid(service.get("env", {}))
            kinds.add("service")
        elif any(r.startswith("docker run -d") for r in runs):
            built = next(shlex.split(r) for r in runs if r.startswith("docker build"))
            started = next(shlex.split(r) for r in runs if r.startswith("docker run -d"))
            tag = built[built.index("-t") + 1]
            assert started[-1] == tag, (built, started)
            assert started[started.index("-p") + 1].endswith(":8000:8000"), started
            variables_valid(dict(e.split("=", 1) for e in started if e.startswith(ENV_PREFIX)))
            kinds.add("container")
        else:
            start = next(r for r in runs if r.startswith("mock-server"))
            assert start.rstrip().endswith("&"), start
            installs = [r for r in runs if r.startswith("pip install")]
            assert any("replicate-flux-emulator" in r for r in installs), runs
            run_background_job(runs, tmp_path)
            kinds.add("process")
    assert kinds == {"service", "container", "process"}, kinds


def run_background_job(runs: list[str], tmp_path: Path) -> None:
    """The job's start and wait steps, run here on a free port (GitHub Actions runs each step in
    a shell of its own; here they share one, which reports the background server's pid)."""
    start = next(i for i, r in enumerate(runs) if r.startswith("mock-server"))
    port = str(free_port())
    script = "\n".join(
        [
            runs[start].replace("8000", port),
            'echo "$!" > emulator.pid',
            runs[start + 1].replace("8000", port),
        ]
    )
    try:
        execute(["bash", "-c", script], tmp_path)
    finally:
        pid = tmp_path / "emulator.pid"
        if pid.exists():
            stop(int(pid.read_text()))
    assert "listening on" in (tmp_path / "mock-server.log").read_text()


# --- the kinds that check a block without running it ----------------------------------------------


MAKEFILE = (PROJECT / "Makefile").read_text()


def check_make(block: Block) -> None:
    for words in commands(block.code):
        assert words[0] == "make", words
        assert len(words) == 2, words
        assert re.search(rf"^{re.escape(words[1])}:", MAKEFILE, re.MULTILINE), words


def check_install(block: Block) -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    assert "pytest" in project["optional-dependencies"]
    text = block.code
    assert f"'{name}[pytest] @ git+https://" in text
    assert f"{name.replace('-', '_')}-{version}-py3-none-any.whl[pytest]" in text
    assert "'/path/to/mock_server[pytest]'" in text
    # The block tests/test_wheel.py runs (its git URL and path installs) is this one.
    assert test_wheel.readme_block("Install it into your project") == block.code


SETTINGS_VARIABLES = {ENV_PREFIX + f.name.upper() for f in fields(Settings)} | {
    ENV_PREFIX + name for name in _FLAG_NAMES.values()
}


def check_docker(block: Block) -> None:
    dockerfile = (PROJECT / "Dockerfile").read_text()
    expose = re.search(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)
    assert expose
    tag = None
    for words in commands(block.code):
        assert words[0] == "docker", words
        if words[1] == "build":
            tag = words[words.index("-t") + 1]
            assert words[-1] == ".", words
            assert f"docker build -t {tag} ." in dockerfile  # as the Dockerfile says
        elif words[1] == "run":
            assert tag is not None, "docker run before docker build"
            assert tag in words, words
            rest = words[words.index(tag) + 1 :]
            if rest:  # a command in the image: the CLI's
                assert rest[0] == "mock-server", rest
                build_parser().parse_args(rest[1:])
            if "-p" in words:
                assert words[words.index("-p") + 1].endswith(f":{expose.group(1)}"), words
            env = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-e")
            variables_valid(env)
        else:
            assert words[1:3] == ["compose", "up"], words
            yaml.safe_load((PROJECT / "compose.yaml").read_text())
    assert tag == "replicate-flux-emulator"


def check_commands(block: Block) -> None:
    words_of = [[w for w in words if w != "&"] for words in commands(block.code)]
    redis_ports = {w[w.index("--port") + 1] for w in words_of if w[0] == "redis-server"}
    ports = []
    for words in words_of:
        assert words[0] in {"apt-get", "redis-server", "mock-server", "nginx"}, words
        if words[0] == "mock-server":
            settings = settings_from(words[1:], {})[1]
            ports.append(settings.port)
            if redis_ports and settings.store.startswith("redis://"):
                assert settings.store.split(":")[2].split("/")[0] in redis_ports, words
        elif words[0] == "nginx":
            conf = PROJECT / words[words.index("-c") + 1].replace("$PWD/", "")
            text = conf.read_text()
            for port in ports:
                assert f"127.0.0.1:{port}" in text, (conf, port)


def check_schemathesis(block: Block) -> None:
    (server, client) = commands(block.code)
    server = [w for w in server if w != "&"]
    assert server[0] == "mock-server"
    settings_from(server[1:], {})
    assert client[:2] == ["schemathesis", "run"]
    help_text = execute([str(BIN / "schemathesis"), "run", "--help"], PROJECT)
    for option in (w for w in client if w.startswith("-")):
        # --include-TYPE / --exclude-TYPE filters, TYPE one of those the help names
        filtering = re.fullmatch(r"--(include|exclude)-(path|method|name|tag|operation-id)", option)
        if filtering:
            assert f"--{filtering.group(1)}-TYPE VALUE" in help_text, option
            assert filtering.group(2) in help_text, option
            continue
        assert re.search(rf"(^|[\s,]){re.escape(option)}\b", help_text), option
    phases = client[client.index("--phases") + 1].split(",")
    for phase in phases:
        assert phase in help_text, phase


RUNNERS: dict[str, Callable[[Block, Path, pytest.FixtureRequest], None]] = {
    "run": run_block,
    "stainless": run_block,
    "pytest": run_pytest,
    "conftest": run_conftest,
    "scenarios": run_scenarios,
    "serve": run_serve,
    "shared-server": run_shared_server,
    "output-of": run_output_of,
    "github-actions": run_github_actions,
}
CHECKERS: dict[str, Callable[[Block], None]] = {
    "make": check_make,
    "install": check_install,
    "docker": check_docker,
    "commands": check_commands,
    "schemathesis": check_schemathesis,
}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if block.kind in RUNNERS:
        assert block.reason is None, f"a {block.kind} block runs: no '{NOT_RUN}' reason"
        RUNNERS[block.kind](block, tmp_path, request)
    elif block.kind in CHECKERS:
        assert block.reason, f"a {block.kind} block is not run: say why ('; {NOT_RUN} ...')"
        for named in re.findall(r"tests/\w+\.py", block.reason):
            assert (PROJECT / named).is_file(), named
        CHECKERS[block.kind](block)
    else:
        pytest.fail(
            f"README.md:{block.line}: a {block.lang or 'plain'} block with no way to test it "
            f"({block.kind!r}): add <!-- readme-test: KIND --> before it, KIND one of "
            f"{sorted(RUNNERS)} or {sorted(CHECKERS)} with '; {NOT_RUN} REASON'"
        )


# --- the README as a whole ------------------------------------------------------------------------


def test_the_blocks_are_found() -> None:
    assert len(BLOCKS) == TEXT.count("\n```") // 2 >= 20


def test_the_first_commands_are_make_run_and_make_test() -> None:
    """CI and the project's rules rely on these being what a newcomer meets first."""
    assert [w[:2] for w in commands(BLOCKS[0].code)] == [["make", "run"], ["make", "test"]]


def test_every_annotation_stands_right_before_a_block() -> None:
    lines = TEXT.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("<!-- readme-test"):
            assert ANNOTATION.fullmatch(line), f"README.md:{i + 1}: {line}"
            assert lines[i + 1].startswith("```"), f"README.md:{i + 1}: no block follows"


def test_the_admin_examples_health_answer_is_what_a_server_answers(tmp_path: Path) -> None:
    """The answer the Admin API block shows for `curl $A/health` is a default server's, key for key
    and value for value, but the clock's `now` (shown as `<now>`)."""
    (shown,) = (
        ln.split("#", 1)[1]
        for block in BLOCKS
        for ln in block.code.splitlines()
        if re.match(r"curl \$A/health\s+#", ln)
    )
    sample = json.loads(shown)
    with live(tmp_path) as url:
        answer = httpx.get(f"{url}/__admin/health", timeout=10).json()
    assert sample["clock"].pop("now") == "<now>", shown
    now = answer["clock"].pop("now")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", now), now
    assert sample == answer


def test_local_links_and_the_screenshot_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)\)", TEXT)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert "docs/demo.png" in local
    for target in local:
        assert (PROJECT / target).exists(), target
    with Image.open(PROJECT / "docs" / "demo.png") as img:
        assert img.format == "PNG"
        assert img.width <= 1000, img.size
    assert (PROJECT / "docs" / "demo.png").stat().st_size < 200_000


# --- the generated tables -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(docs.REGIONS))
def test_the_generated_tables_match_the_code(name: str) -> None:
    assert docs.readme_region(TEXT, name) == docs.region(name), (
        f"README.md's {name} differs from the code: run `make readme-table`"
    )


def table_cells(region: str, column: int) -> list[str]:
    return [row.split(" | ")[column] for row in region.splitlines() if row.startswith("| `")]


def test_the_configuration_table_lists_every_flag_and_variable() -> None:
    region = docs.readme_region(TEXT, "config-table")
    listed = {f for cell in table_cells(region, 0) for f in re.findall(r"--[a-z][a-z-]*", cell)}
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }
    assert flags == listed, f"not in the table: {flags - listed}; not flags: {listed - flags}"
    variables = set(re.findall(r"MOCK_SERVER_[A-Z_]+", region))
    assert variables == SETTINGS_VARIABLES


def test_the_plugin_table_lists_every_option() -> None:
    region = docs.readme_region(TEXT, "plugin-options")
    source = (PROJECT / "mock_server" / "pytest_plugin.py").read_text()
    options = set(re.findall(r'addoption\(\s*"(--[a-z-]+)"', source))
    assert options
    assert {c.strip("| `") for c in table_cells(region, 0)} == options


def test_the_variable_rules_hold() -> None:
    """What the table's note says about variables."""
    assert "Flags win over variables." in docs.VARIABLE_RULES
    assert settings_from(["--port", "9"], {"MOCK_SERVER_PORT": "7"})[1].port == 9
    assert Settings.from_env({"MOCK_SERVER_PORT": ""}).port == Settings().port
    assert Settings.from_env({"MOCK_SERVER_API_TOKEN": "a,b"}).api_tokens == ("a", "b")
    for on in ("1", "true", "yes", "on"):
        assert Settings.from_env({"MOCK_SERVER_ACCESS_LOG": on}).access_log, on
    assert not Settings.from_env({"MOCK_SERVER_ACCESS_LOG": "no"}).access_log


def test_docs_check_and_write(tmp_path: Path) -> None:
    """`python -m mock_server.docs --check` fails on a stale README, `--write` mends it."""
    stale = tmp_path / "README.md"
    stale.write_text(TEXT.replace("| `--port` |", "| `--prot` |"))
    assert docs.main(["--check", "--readme", str(stale)]) == 1
    assert docs.main(["--write", "--readme", str(stale)]) == 0
    assert stale.read_text() == docs.rewritten(TEXT)
    assert docs.main(["--check", "--readme", str(stale)]) == 0


def test_docs_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main([]) == 0
    out = capsys.readouterr().out
    assert all(docs.region(name) in out for name in docs.REGIONS)


def test_a_setting_without_a_flag_needs_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(docs.VARIABLE_ONLY, "image_cache_bytes")
    with pytest.raises(ValueError, match="image_cache_bytes has no flag"):
        docs.config_table()
