"""The container image and the compose stack, without a Docker daemon.

The Dockerfile is read with dockerfile-parse, compose.yaml with PyYAML, examples/nginx-compose.conf
with a small tokenizer of nginx's syntax, and checked for what the deployment relies on. Then
tests/docker_steps.py performs the Dockerfile's steps (the wheel built from what the build stage
copies, installed alone into a fresh virtual environment) and runs the image's CMD with its
environment, waiting on its HEALTHCHECK command; and the compose stack runs the same way: two
replicas with compose's environment on a real redis-server, behind a real nginx with the compose
config, started in compose's order (Redis, the replicas once their health checks pass, nginx).
Everything listens on 127.0.0.1 only, on free ports (the image's 0.0.0.0:8000 is for inside a
container).
"""

from __future__ import annotations

import ast
import io
import os
import shlex
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]
from PIL import Image as PILImage

from mock_server.config import _FLAG_NAMES, ENV_PREFIX, Settings
from tests import docker_steps
from tests.conftest import AUTH, PROJECT, nginx_binary, wait_listening
from tests.docker_steps import Image, Stage
from tests.redis_server import RedisServer, free_port

COMPOSE = PROJECT / "compose.yaml"
NGINX_CONF = PROJECT / "examples" / "nginx-compose.conf"
CREATE = "/v1/models/black-forest-labs/flux-schnell/predictions"
WAIT = {"Prefer": "wait=30"}  # the image's own timings (time scale 1): flux-schnell takes ~1 s
START_S = 20.0
SETTINGS_VARIABLES = {ENV_PREFIX + f.name.upper() for f in fields(Settings)} | {
    ENV_PREFIX + name for name in _FLAG_NAMES.values()
}


# --- the Dockerfile ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return docker_steps.parse()


@pytest.fixture(scope="module")
def described() -> Image:
    return docker_steps.describe()


def run_commands(stage: Stage) -> list[list[str]]:
    return [
        argv
        for i in stage.instructions
        if i.name == "RUN"
        for argv in docker_steps.commands(i.value)
    ]


def pip_commands(stage: Stage, subcommand: str) -> list[list[str]]:
    found = [docker_steps.pip_args(argv) for argv in run_commands(stage)]
    return [args for args in found if args and args[0] == subcommand]


def copies(stage: Stage) -> list[tuple[dict[str, str], list[str], str]]:
    """Each COPY of the stage: its options, sources and destination."""
    found = []
    for step in stage.instructions:
        if step.name == "COPY":
            words = shlex.split(step.value)
            options = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            *sources, dest = [w for w in words if not w.startswith("--")]
            found.append((options, sources, dest))
    return found


def test_the_image_is_built_in_two_stages_and_ends_on_a_slim_python(stages: list[Stage]) -> None:
    parser = DockerfileParser(path=str(PROJECT / "Dockerfile"))
    assert parser.is_multistage
    assert len(parser.parent_images) == len(stages) >= 2
    final = str(parser.baseimage)
    assert final.startswith("python:3."), final
    assert final.endswith("-slim"), final
    # The final stage starts afresh (not FROM the build stage) and takes only its /dist.
    assert stages[-1].base == final
    assert stages[0].name == "build"
    assert {opts.get("from") for opts, _, _ in copies(stages[-1])} == {"build"}


def test_the_build_stage_copies_what_the_wheel_is_made_of_and_builds_it(
    stages: list[Stage],
) -> None:
    build = stages[0]
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = ["pyproject.toml", project["project"]["readme"], *wheel["packages"]]
    needed += list(wheel["force-include"])
    copied = [s.rstrip("/") for _, sources, _ in copies(build) for s in sources]
    for path in needed:
        assert any(path == c or path.startswith(c + "/") for c in copied), f"{path} not copied"
    patterns = docker_steps.ignore_patterns(PROJECT)
    for source in copied:
        assert (PROJECT / source).exists(), source
        assert not docker_steps.ignored(source, patterns), f".dockerignore leaves out {source}"
    [wheel_cmd] = pip_commands(build, "wheel")
    assert "--no-deps" in wheel_cmd
    out = wheel_cmd[wheel_cmd.index("--wheel-dir") + 1]
    assert [dest for _, sources, dest in copies(stages[-1])] == ["/tmp/dist/"]
    assert [sources for _, sources, _ in copies(stages[-1])] == [[out.rstrip("/") + "/"]]


def test_the_final_stage_installs_the_wheel_and_nothing_else(stages: list[Stage]) -> None:
    final = stages[-1]
    [install] = pip_commands(final, "install")
    targets = [a for a in install[1:] if not a.startswith("-")]
    assert targets == ["/tmp/dist/replicate_flux_emulator-*.whl"]
    assert not {"-e", "--editable"} & set(install)
    # No source tree in the image: its only COPY is the build stage's wheel.
    assert all(opts.get("from") == "build" for opts, _, _ in copies(final))


def test_it_runs_as_a_user_it_creates_not_root(stages: list[Stage], described: Image) -> None:
    users = [i for i in stages[-1].instructions if i.name == "USER"]
    assert users, "no USER in the final stage: the server would run as root"
    assert described.user.split(":")[0] not in ("root", "0")
    assert described.user.split(":")[1:] != ["0"]  # nor in group root
    assert described.uid > 0
    assert described.users == {"emulator": described.uid}
    # USER comes after every RUN (which install as root) and before the CMD.
    names = [i.name for i in stages[-1].instructions]
    assert names.index("USER") > max(n for n, name in enumerate(names) if name == "RUN")


def health_code(image: Image) -> str:
    assert image.healthcheck is not None
    program, flag, code = image.healthcheck.test
    assert (program, flag) == ("python", "-c"), image.healthcheck.test  # no curl in slim images
    return code


def strings_in(code: str) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_the_health_check_asks_the_servers_health_route(described: Image) -> None:
    check = described.healthcheck
    assert check is not None
    strings = strings_in(health_code(described))
    assert "/__admin/health" in strings
    assert {"MOCK_SERVER_PORT", "MOCK_SERVER_ADMIN_TOKEN"} <= strings
    assert any(s.endswith("://127.0.0.1:") for s in strings)
    # Often enough that compose's balancer starts within seconds; each check ends in time.
    assert check.interval <= 10
    assert 0 < check.timeout < check.interval
    assert check.retries >= 1


def test_it_listens_on_8000_on_every_interface_inside_the_container(described: Image) -> None:
    assert described.exposed == ["8000"]
    assert described.env["MOCK_SERVER_HOST"] == "0.0.0.0"
    settings = Settings.from_env(described.env)
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    # Settings come from variables only: the command is the bare CLI (exec form, PID 1 gets
    # SIGTERM), the one pyproject.toml installs.
    assert described.cmd == ["mock-server"]
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mock-server"] == "mock_server.cli:main"


def test_the_context_leaves_out_environments_caches_and_tests() -> None:
    patterns = docker_steps.ignore_patterns(PROJECT)
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "mock_server/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/v",
        ".mypy_cache/x",
        ".hypothesis/examples",
        "tests/test_docker.py",
        "replicate_flux_emulator.egg-info/PKG-INFO",
    ):
        assert docker_steps.ignored(path, patterns), path
    for path in ("mock_server/app.py", "fixtures/models/black-forest-labs/flux-dev.yaml"):
        assert not docker_steps.ignored(path, patterns), path


# --- compose.yaml and its nginx ------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def emulators(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from the Dockerfile."""
    return {name: s for name, s in services(compose).items() if "build" in s}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Published:
    host_ip: str
    published: int
    target: int


def published(service: dict[str, Any]) -> list[Published]:
    found = []
    for port in service.get("ports") or []:
        *host_ip, host_port, target = str(port).split(":")
        found.append(Published(host_ip[0] if host_ip else "", int(host_port), int(target)))
    return found


def test_compose_runs_two_replicas_of_the_image(compose: dict[str, Any]) -> None:
    replicas = emulators(compose)
    assert len(replicas) == 2, sorted(replicas)
    for name, service in replicas.items():
        build = service["build"]
        context = build if isinstance(build, str) else build["context"]
        assert (PROJECT / context).resolve() == PROJECT, name
        assert isinstance(build, str) or build.get("dockerfile", "Dockerfile") == "Dockerfile"
        # Plain `docker compose up` runs one container per service.
        assert (service.get("deploy") or {}).get("replicas", 1) == 1, name
        # The image's HEALTHCHECK is theirs (not switched off or replaced).
        assert "healthcheck" not in service, name


def test_the_replicas_share_the_redis_service(compose: dict[str, Any]) -> None:
    redis = services(compose)["redis"]
    assert redis["image"] == "redis:7"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name, service in emulators(compose).items():
        assert environment(service)["MOCK_SERVER_STORE"] == "redis://redis:6379/0", name
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_only_the_balancer_publishes_a_port_and_urls_name_it(compose: dict[str, Any]) -> None:
    publishing = {name for name, s in services(compose).items() if s.get("ports")}
    assert publishing == {"balancer"}
    assert not any(s.get("network_mode") == "host" for s in services(compose).values())
    [port] = published(services(compose)["balancer"])
    assert port.host_ip == "127.0.0.1"  # this machine only, as mock-server's own default
    for name, service in emulators(compose).items():
        url = environment(service)["MOCK_SERVER_PUBLIC_URL"]
        assert url == f"http://{port.host_ip}:{port.published}", name


def test_the_balancer_is_nginx_with_the_compose_config(compose: dict[str, Any]) -> None:
    balancer = services(compose)["balancer"]
    assert balancer["image"].split(":")[0] == "nginx"  # the official image
    assert balancer["volumes"] == ["./examples/nginx-compose.conf:/etc/nginx/nginx.conf:ro"]
    assert balancer["depends_on"] == {
        name: {"condition": "service_healthy"} for name in emulators(compose)
    }


def test_a_replicas_environment_is_valid_settings(
    compose: dict[str, Any], described: Image
) -> None:
    [port] = published(services(compose)["balancer"])
    for service in emulators(compose).values():
        settings = Settings.from_env({**described.env, **environment(service)})
        assert settings.store == "redis://redis:6379/0"
        assert settings.public_url == f"http://127.0.0.1:{port.published}"
        assert (settings.host, settings.port) == ("0.0.0.0", 8000)


def test_every_mock_server_variable_is_a_setting(
    stages: list[Stage], described: Image, compose: dict[str, Any]
) -> None:
    used = {k for stage in stages for i in stage.instructions for k in i.env}
    used |= {s for s in strings_in(health_code(described)) if s.startswith(ENV_PREFIX)}
    used |= {k for s in services(compose).values() for k in environment(s)}
    used = {name for name in used if name.startswith(ENV_PREFIX)}
    assert used >= {"MOCK_SERVER_HOST", "MOCK_SERVER_PORT", "MOCK_SERVER_STORE"}
    assert used <= SETTINGS_VARIABLES, used - SETTINGS_VARIABLES


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None


def nginx_tokens(text: str) -> Iterator[str]:
    """nginx's configuration syntax as words and `;`, `{`, `}` (comments dropped, quotes
    removed)."""
    word, quote, comment = "", "", False
    for char in text:
        if comment:
            comment = char != "\n"
        elif quote:
            if char == quote:
                yield word
                word, quote = "", ""
            else:
                word += char
        elif char in "\"'":
            quote = char
        elif char == "#" and not word:
            comment = True
        elif char.isspace() or char in ";{}":
            if word:
                yield word
                word = ""
            if char in ";{}":
                yield char
        else:
            word += char
    assert not quote, "an unterminated quote"
    assert not word, "no `;` after the last directive"


def nginx_parse(tokens: Iterator[str]) -> list[Directive]:
    found: list[Directive] = []
    words: list[str] = []
    for token in tokens:
        if token == ";":
            found.append(Directive(words[0], words[1:], None))
            words = []
        elif token == "{":
            found.append(Directive(words[0], words[1:], nginx_parse(tokens)))
            words = []
        elif token == "}":
            assert not words
            return found
        else:
            words.append(token)
    assert not words
    return found


def directives(block: list[Directive], *path: str) -> list[Directive]:
    """The directives at `path` (e.g. "http", "upstream", "server")."""
    level = [d for d in block if d.name == path[0]]
    for name in path[1:]:
        level = [d for parent in level for d in parent.block or [] if d.name == name]
    return level


def test_the_nginx_config_balances_both_replicas(compose: dict[str, Any], described: Image) -> None:
    config = nginx_parse(nginx_tokens(NGINX_CONF.read_text()))
    [upstream] = directives(config, "http", "upstream")
    servers = [d.args[0] for d in upstream.block or [] if d.name == "server"]
    port = described.exposed[0]
    assert sorted(servers) == sorted(f"{name}:{port}" for name in emulators(compose))
    [location] = directives(config, "http", "server", "location")
    assert location.args == ["/"]
    [proxy_pass] = [d for d in location.block or [] if d.name == "proxy_pass"]
    assert proxy_pass.args == [f"http://{upstream.args[0]}"]
    [balancer_port] = published(services(compose)["balancer"])
    [listen] = directives(config, "http", "server", "listen")
    assert listen.args == [str(balancer_port.target)]
    # The image's command is `nginx -g 'daemon off;'`: the directive twice is an error.
    assert not directives(config, "daemon")


# --- the image's steps, run ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The image built once per run, into a folder every xdist worker shares (the first builds,
    the others wait on its lock and load it)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    folder = base.parent / f"docker-{run_id}" if run_id else base / "docker"
    return docker_steps.build(folder)


def loopback(image: Image, **extra: str) -> tuple[dict[str, str], str]:
    """The container's environment on a free 127.0.0.1 port (loopback only: the image's 0.0.0.0
    would open the test's server to the network), and its URL."""
    port = free_port()
    env = image.environ({"MOCK_SERVER_HOST": "127.0.0.1", "MOCK_SERVER_PORT": str(port), **extra})
    return env, f"http://127.0.0.1:{port}"


def test_the_built_image_serves_predictions(built: Image, tmp_path: Path) -> None:
    assert built.cmd == ["mock-server"]
    assert shutil.which("mock-server", path=built.environ()["PATH"]) == str(
        built.venv / "bin" / "mock-server"
    )
    env, url = loopback(built)
    # Nothing listens yet: the health check fails (and says why).
    before = docker_steps.health_check(built, env)
    assert before.returncode != 0
    assert "Connection refused" in before.stderr
    with docker_steps.start(built, env, tmp_path / "server.log") as proc:
        docker_steps.wait_healthy(built, env, proc)
        with httpx.Client(base_url=url, headers=AUTH, timeout=START_S) as http:
            health = http.get("/__admin/health").json()
            assert (health["status"], health["store"]) == ("ok", "memory")
            created = http.post(
                CREATE,
                json={"input": {"prompt": "a container", "aspect_ratio": "16:9"}},
                headers=WAIT,
            )
            assert created.status_code == 201, created.text
            prediction = created.json()
            assert prediction["status"] == "succeeded", prediction
            [output] = prediction["output"]
            assert output.startswith(f"{url}/")
            image = http.get(output)
        assert image.status_code == 200
        with PILImage.open(io.BytesIO(image.content)) as img:
            assert (img.format, img.size) == ("WEBP", (1344, 768))
    # docker stop: SIGTERM, and the server shuts down within the grace period (no SIGKILL).
    # uvicorn raises the signal again once it has finished: the status says SIGTERM (docker ps
    # shows "Exited (143)").
    assert proc.returncode == -signal.SIGTERM, (tmp_path / "server.log").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_the_installed_image_has_the_wheel_and_not_the_source(built: Image) -> None:
    python = built.venv / "bin" / "python"
    code = (
        "import mock_server, importlib.metadata as m; print(mock_server.__file__); "
        "print(m.version('replicate-flux-emulator'))"
    )
    done = subprocess.run(
        [python, "-c", code],
        env=built.environ(),
        cwd=built.host(built.workdir),
        capture_output=True,
        text=True,
        timeout=START_S,
        check=True,
    )
    location, version = done.stdout.split()
    assert location.startswith(f"{built.venv}/lib/")
    assert "/site-packages/mock_server/" in location
    assert version == tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    check = subprocess.run(
        ["mock-server", "check"],
        env=built.environ(),
        cwd=built.host(built.workdir),
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert check.returncode == 0, check.stderr
    assert "site-packages/mock_server/_data/openapi.yaml" in check.stdout


@pytest.mark.parametrize("variant", ["admin-token", "tls"])
def test_the_health_check_follows_the_servers_settings(
    built: Image, tmp_path: Path, variant: str
) -> None:
    """With an admin token the health route needs it, with TLS it speaks HTTPS: the image's
    health check still passes (else compose would never start the balancer)."""
    if variant == "admin-token":
        env, url = loopback(built, MOCK_SERVER_ADMIN_TOKEN="adm_secret")
    else:
        env, url = loopback(
            built, MOCK_SERVER_TLS="true", MOCK_SERVER_TLS_CA_FILE=str(tmp_path / "ca.pem")
        )
    with docker_steps.start(built, env, tmp_path / "server.log") as proc:
        docker_steps.wait_healthy(built, env, proc)
        if variant == "admin-token":  # it passed because it sent the token
            assert httpx.get(f"{url}/__admin/health", timeout=START_S).status_code == 401
            # ... and an answer that is not a 2xx fails it.
            without = {k: v for k, v in env.items() if k != "MOCK_SERVER_ADMIN_TOKEN"}
            failed = docker_steps.health_check(built, without)
            assert failed.returncode != 0
            assert "HTTP Error 401" in failed.stderr
        else:  # it passed over HTTPS
            https = url.replace("http://", "https://")
            ca = str(tmp_path / "ca.pem")
            assert httpx.get(f"{https}/__admin/health", verify=ca, timeout=START_S).is_success
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/__admin/health", timeout=START_S)


# --- the compose stack, run ----------------------------------------------------------------------


@pytest.fixture
def compose_stack(
    built: Image, compose: dict[str, Any], redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[str, list[str]]]:
    """compose.yaml's stack from the built image: the replicas with their compose environment
    (Redis and the public URL moved to this test's), healthy before nginx starts with
    examples/nginx-compose.conf (its upstreams and port moved to free loopback ones). Yields the
    balancer's URL and the replicas'."""
    listen = free_port()
    balancer = f"http://127.0.0.1:{listen}"
    config = NGINX_CONF.read_text()
    replicas: list[str] = []
    with ExitStack() as stack:
        for name, service in emulators(compose).items():
            env_of_service = environment(service)
            assert env_of_service["MOCK_SERVER_STORE"] == "redis://redis:6379/0"
            moved = {**env_of_service, "MOCK_SERVER_STORE": redis_server.url}
            moved["MOCK_SERVER_PUBLIC_URL"] = balancer
            env, url = loopback(built, **moved)
            proc = stack.enter_context(docker_steps.start(built, env, tmp_path / f"{name}.log"))
            docker_steps.wait_healthy(built, env, proc)  # depends_on: service_healthy
            port = url.rsplit(":", 1)[1]
            upstream = f"server {name}:{built.exposed[0]};"
            assert upstream in config
            config = config.replace(upstream, f"server 127.0.0.1:{port};")
            replicas.append(url)
        [published_port] = published(services(compose)["balancer"])
        listen_line = f"listen {published_port.target};"
        assert listen_line in config
        config = config.replace(listen_line, f"listen 127.0.0.1:{listen};")
        # The files the image's nginx keeps under its own prefix, here in this test's folder.
        temp = f"client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;"
        config = config.replace("http {", "http {\n    " + temp, 1)
        (tmp_path / "nginx.conf").write_text(config)
        log = tmp_path / "nginx.log"
        with log.open("wb") as out:  # the image's command: nginx -g 'daemon off;'
            nginx = subprocess.Popen(
                [
                    nginx_binary(),
                    "-p",
                    str(tmp_path),
                    "-c",
                    str(tmp_path / "nginx.conf"),
                    "-g",
                    f"daemon off; pid {tmp_path}/nginx.pid;",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_listening(listen, nginx, log)
            yield balancer, replicas
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def test_the_compose_stack_serves_through_the_balancer(
    compose_stack: tuple[str, list[str]],
) -> None:
    balancer, replicas = compose_stack
    with httpx.Client(base_url=balancer, headers=AUTH, timeout=START_S) as http:
        assert http.get("/__admin/health").json()["store"] == "redis"
        ids = []
        for n in range(4):  # round-robin: creates land on both replicas
            r = http.post(CREATE, json={"input": {"prompt": f"compose {n}"}}, headers=WAIT)
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "succeeded", r.json()
            [output] = r.json()["output"]
            assert output.startswith(f"{balancer}/delivery/")  # MOCK_SERVER_PUBLIC_URL
            image = http.get(output)
            assert (image.status_code, image.headers["content-type"]) == (200, "image/webp")
            ids.append(r.json()["id"])
    for replica in replicas:  # each replica sees every prediction
        with httpx.Client(base_url=replica, headers=AUTH, timeout=START_S) as direct:
            listed = direct.get("/v1/predictions").json()["results"]
            assert {p["id"] for p in listed} == set(ids)
