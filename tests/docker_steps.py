"""The Dockerfile's steps without Docker: build the image's contents in a folder, then run its
command with its environment and wait on its health check, as a container would.

    .venv/bin/python -m tests.docker_steps    # build, start, health check, one prediction

`build(into)` reads the Dockerfile with dockerfile-parse and performs its instructions in order.
Each stage gets a file system of its own (container path P lives at `into/<stage>/root/P`), and
a fresh virtual environment stands in for the base image's Python (python:X.Y-slim's /usr/local:
the same X.Y as this interpreter, checked) once a RUN installs into it. COPY copies from the
build context (what .dockerignore leaves) or from an earlier stage, WORKDIR moves, and RUN runs
its pip commands unchanged but for the paths, pip taking everything, build dependencies
included, from the wheelhouse `make test` fills (.venv/wheelhouse): no network.

`Image.environ()` is the container's environment (the base image's, the Dockerfile's ENV, then
`docker run -e`'s), `start()` runs the CMD and `wait_healthy()` the HEALTHCHECK command, both as
written: a bare `mock-server` or `python` is found on that environment's PATH, the image's
Python first, as /usr/local/bin is first in the image.

What it does not do, and says so: create users (`useradd` is recorded, the USER is resolved
through it and must not be root, and the server runs as the current user), isolate the network
(callers bind 127.0.0.1 on a free port, loopback only, instead of the image's 0.0.0.0:8000), or
run any other RUN command (an instruction or command it cannot perform raises NotEmulated).
"""

from __future__ import annotations

import fcntl
import fnmatch
import glob
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from tests.conftest import PROJECT
from tests.redis_server import free_port
from tests.test_wheel import INSTALL_S, fresh_venv, offline_pip, run

DOCKERFILE = PROJECT / "Dockerfile"
STOP_S = 10  # docker stop's grace period before SIGKILL
# Instructions with no effect on the steps here (ENV and ARG are read through dockerfile-parse's
# per-line context).
NOTED = {"COMMENT", "LABEL", "ENV", "ARG", "EXPOSE", "STOPSIGNAL", "USER", "HEALTHCHECK", "CMD"}
USER_COMMANDS = {"useradd", "groupadd", "adduser", "addgroup"}


class NotEmulated(RuntimeError):
    """The Dockerfile does something these steps cannot perform without Docker."""


class Unhealthy(RuntimeError):
    """The health check did not pass within the time Docker gives it."""


@dataclass(frozen=True)
class Instruction:
    name: str  # FROM, RUN, ... (dockerfile-parse upper-cases them)
    value: str
    env: dict[str, str]  # the stage's ENV in force at this line


@dataclass(frozen=True)
class Stage:
    index: int
    base: str
    name: str | None
    instructions: list[Instruction]


def parse(dockerfile: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (the FROM line excluded)."""
    parser = DockerfileParser(path=str(dockerfile))
    structure: list[dict[str, Any]] = parser.structure
    stages: list[Stage] = []
    for line, context in zip(structure, parser.context_structure, strict=True):
        name, value = str(line["instruction"]), str(line["value"])
        if name == "FROM":
            words = value.split()
            if words[0].startswith("--"):
                raise NotEmulated(f"FROM {value}: options are not emulated")
            stage_name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            if len(words) not in (1, 3) or (len(words) == 3 and stage_name is None):
                raise NotEmulated(f"FROM {value}: expected IMAGE [AS NAME]")
            stages.append(Stage(len(stages), words[0], stage_name, []))
        elif stages:
            stages[-1].instructions.append(Instruction(name, value, dict(context.envs)))
        elif name not in ("COMMENT", "ARG"):
            raise NotEmulated(f"{name} before the first FROM")
    if not stages:
        raise NotEmulated("no FROM in the Dockerfile")
    return stages


def commands(run_value: str) -> list[list[str]]:
    """A RUN line's shell form as the commands it chains with `&&` (nothing else of the shell's
    is emulated: other operators and expansions raise NotEmulated)."""
    lexer = shlex.shlex(run_value, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found: list[list[str]] = [[]]
    for word in lexer:
        if word == "&&":
            found.append([])
        elif word and all(c in "();<>|&" for c in word):
            raise NotEmulated(f"RUN {run_value}: only `&&` between commands is emulated")
        elif "$" in word or "`" in word:
            raise NotEmulated(f"RUN {run_value}: shell expansions are not emulated")
        else:
            found[-1].append(word)
    if not all(found):
        raise NotEmulated(f"RUN {run_value}: an empty command")
    return found


def pip_args(argv: list[str]) -> list[str] | None:
    """pip's arguments if `argv` runs pip (pip, pip3, python -m pip), else None."""
    if argv[0] in ("pip", "pip3"):
        return argv[1:]
    if argv[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
        return argv[3:]
    return None


def last(stage: Stage, name: str) -> Instruction | None:
    found = [i for i in stage.instructions if i.name == name]
    return found[-1] if found else None


def exec_form(value: str) -> list[str]:
    """A CMD's (or HEALTHCHECK CMD's) argv: its JSON array, else `/bin/sh -c value` (Docker's
    rule: a value that is not a JSON array of strings is the shell form)."""
    try:
        argv = json.loads(value)
    except ValueError:
        argv = None
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return argv
    return ["/bin/sh", "-c", value]


def duration(text: str) -> float:
    """A Docker duration (Go's syntax, e.g. 30s, 1m30s, 500ms) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    total, number, rest = 0.0, "", text
    while rest:
        if rest[0].isdigit() or rest[0] == ".":
            number, rest = number + rest[0], rest[1:]
            continue
        unit = next((u for u in ("ms", "us", "ns", "h", "m", "s") if rest.startswith(u)), None)
        if unit is None or not number:
            raise NotEmulated(f"not a duration: {text!r}")
        total, number, rest = total + float(number) * units[unit], "", rest[len(unit) :]
    if number:
        raise NotEmulated(f"a duration needs a unit: {text!r}")
    return total


@dataclass(frozen=True)
class HealthCheck:
    """HEALTHCHECK [OPTIONS] CMD ...: Docker's defaults unless given."""

    test: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    retries: int = 3

    @classmethod
    def parse(cls, value: str) -> HealthCheck:
        options: dict[str, str] = {}
        rest = value.strip()
        while rest.startswith("--"):
            option, _, rest = rest.partition(" ")
            key, _, text = option[2:].partition("=")
            options[key] = text
            rest = rest.strip()
        word, _, command = rest.partition(" ")
        if word.upper() != "CMD":
            raise NotEmulated(f"HEALTHCHECK {value}: expected [OPTIONS] CMD command")
        unknown = set(options) - {"interval", "timeout", "start-period", "retries"}
        if unknown:
            raise NotEmulated(f"HEALTHCHECK options not emulated: {sorted(unknown)}")
        return cls(
            test=exec_form(command.strip()),
            interval=duration(options.get("interval", "30s")),
            timeout=duration(options.get("timeout", "30s")),
            start_period=duration(options.get("start-period", "0s")),
            retries=int(options.get("retries", "3")),
        )


@dataclass(frozen=True)
class Image:
    """The final stage, built: its file system and Python, and how a container runs it."""

    root: Path  # the container's `/`
    venv: Path  # the image's Python (/usr/local in python:X.Y-slim)
    env: dict[str, str]  # the Dockerfile's ENV
    workdir: str  # container path
    user: str  # as written in USER
    uid: int  # USER resolved through the users the Dockerfile creates
    home: str  # container path
    exposed: list[str]
    cmd: list[str]
    healthcheck: HealthCheck | None
    users: dict[str, int] = field(default_factory=dict)  # created by useradd: name -> uid

    def host(self, container_path: str) -> Path:
        return self.root / posixpath.normpath(container_path).lstrip("/")

    def environ(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The container's environment: the base image's (PATH with the image's Python first,
        LANG), HOME of the USER, the Dockerfile's ENV, then `overrides` (`docker run -e`)."""
        base = {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.host(self.home)),
        }
        return {**base, **self.env, **(overrides or {})}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), default=str, indent=1))

    @classmethod
    def load(cls, path: Path) -> Image:
        data = json.loads(path.read_text())
        check = data.pop("healthcheck")
        return cls(
            **{**data, "root": Path(data["root"]), "venv": Path(data["venv"])},
            healthcheck=HealthCheck(**check) if check else None,
        )


# --- .dockerignore -------------------------------------------------------------------------------


def ignore_patterns(context: Path) -> list[list[str]]:
    """.dockerignore's patterns, each split into path segments (Docker cleans them and drops a
    leading slash); `!` exceptions are not emulated."""
    path = context / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if any(p.startswith("!") for p in patterns):
        raise NotEmulated(".dockerignore exceptions (!PATTERN) are not emulated")
    return [posixpath.normpath(p.lstrip("/")).split("/") for p in patterns]


def _matches(pattern: list[str], parts: list[str]) -> bool:
    """Go's filepath.Match per path segment, `**` standing for any number of segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(pattern[1:], parts[1:])
    )


def ignored(relative: str, patterns: list[list[str]]) -> bool:
    """Whether the context leaves out `relative`: a pattern matches it or a folder it is in."""
    parts = posixpath.normpath(relative).split("/")
    return any(_matches(p, parts[:n]) for p in patterns for n in range(1, len(parts) + 1))


# --- the build -----------------------------------------------------------------------------------


class Builder:
    def __init__(self, into: Path, context: Path, stages: list[Stage]) -> None:
        self.into = into
        self.context = context
        self.stages = stages
        self.patterns = ignore_patterns(context)
        self.roots: dict[int, Path] = {}
        self.venvs: dict[int, Path] = {}
        self.users: dict[str, int] = {}

    def root(self, stage: Stage) -> Path:
        return self.roots.setdefault(stage.index, self.into / f"stage-{stage.index}" / "root")

    def host(self, stage: Stage, container_path: str) -> Path:
        return self.root(stage) / posixpath.normpath(container_path).lstrip("/")

    def python(self, stage: Stage, changes: bool = True) -> Path:
        """The stage's Python: a fresh venv, made when the stage first runs a pip command that
        changes the environment. `pip wheel` and `pip download` change nothing (the wheel's
        build dependencies go into pip's isolated build environment), so until then this
        interpreter's pip stands in (a venv takes seconds to make)."""
        if not changes and stage.index not in self.venvs:
            return Path(sys.executable)
        if stage.index not in self.venvs:
            self.venvs[stage.index] = fresh_venv(self.into / f"stage-{stage.index}" / "python")
        return self.venvs[stage.index] / "bin" / "python"

    def build(self) -> Image:
        for stage in self.stages:
            self.check_base(stage)
            workdir = "/"
            self.host(stage, workdir).mkdir(parents=True, exist_ok=True)
            for step in stage.instructions:
                if step.name == "WORKDIR":
                    workdir = posixpath.join(workdir, step.value.strip())
                    self.host(stage, workdir).mkdir(parents=True, exist_ok=True)
                elif step.name == "COPY":
                    self.copy(stage, step.value, workdir)
                elif step.name == "RUN":
                    self.run(stage, step, workdir)
                elif step.name not in NOTED:
                    raise NotEmulated(f"{step.name} {step.value}: not emulated")
        return self.image(self.stages[-1])

    def check_base(self, stage: Stage) -> None:
        repository, _, tag = stage.base.partition(":")
        version = tag.split("-")[0]
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if repository != "python" or version.count(".") != 1:
            raise NotEmulated(f"FROM {stage.base}: only python:X.Y[-variant] bases are emulated")
        if version != here:
            raise NotEmulated(f"FROM {stage.base}: needs Python {version}, this is {here}")

    def stage_named(self, reference: str) -> Stage:
        for stage in self.stages:
            if reference in (stage.name, str(stage.index)):
                return stage
        raise NotEmulated(f"COPY --from={reference}: no such stage (other images are not pulled)")

    def copy(self, stage: Stage, value: str, workdir: str) -> None:
        words = json.loads(value) if value.lstrip().startswith("[") else shlex.split(value)
        options = {}
        while words and words[0].startswith("--"):
            key, _, text = words.pop(0)[2:].partition("=")
            options[key] = text
        if set(options) - {"from", "chown", "chmod", "link"}:
            raise NotEmulated(f"COPY {value}: options not emulated")
        *sources, dest = words
        if not sources:
            raise NotEmulated(f"COPY {value}: no source")
        source_stage = self.stage_named(options["from"]) if "from" in options else None
        base = self.root(source_stage) if source_stage else self.context
        target = self.host(stage, posixpath.join(workdir, dest))
        into_folder = dest.endswith("/") or len(sources) > 1 or target.is_dir()
        for source in sources:
            pattern = posixpath.normpath(source).lstrip("/")
            matches = [base] if pattern in ("", ".") else sorted(base.glob(pattern))
            if not source_stage:
                matches = [m for m in matches if not ignored(self.relative(m), self.patterns)]
            if not matches:
                raise NotEmulated(
                    f"COPY {value}: {source} not found (or left out by .dockerignore)"
                )
            for found in matches:
                if found.is_dir():  # the folder's contents, not the folder
                    shutil.copytree(
                        found, target, dirs_exist_ok=True, ignore=self.context_ignore(source_stage)
                    )
                else:
                    where = target / found.name if into_folder else target
                    where.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, where)

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.context.resolve()).as_posix()

    def context_ignore(self, source_stage: Stage | None) -> Any:
        if source_stage is not None:
            return None

        def skip(folder: str, names: list[str]) -> set[str]:
            return {n for n in names if ignored(self.relative(Path(folder) / n), self.patterns)}

        return skip

    def run(self, stage: Stage, step: Instruction, workdir: str) -> None:
        for argv in commands(step.value):
            if (args := pip_args(argv)) is not None:
                self.pip(stage, step, workdir, args)
            elif argv[0] in USER_COMMANDS:
                self.note_user(argv)
            else:
                raise NotEmulated(f"RUN {shlex.join(argv)}: only pip and useradd are emulated")

    def pip(self, stage: Stage, step: Instruction, workdir: str, args: list[str]) -> None:
        """pip as the RUN line has it, container paths moved into the stage's file system."""
        mapped: list[str] = []
        for arg in args:
            option, equals, path = arg.partition("=") if arg.startswith("--") else ("", "", arg)
            if path.startswith("/"):
                host = str(self.host(stage, path))
                if glob.has_magic(host):  # the shell's globbing (no match: the word as it is)
                    found = sorted(glob.glob(host)) or [host]
                    mapped.extend(option + equals + p for p in found)
                    continue
                path = host
            mapped.append(option + equals + path)
        subcommand = next((a for a in args if not a.startswith("-")), "")
        python = self.python(stage, changes=subcommand not in ("wheel", "download"))
        env = {**offline_pip(), **step.env, "PATH": f"{python.parent}:{os.environ['PATH']}"}
        run(python, "-m", "pip", *mapped, cwd=self.host(stage, workdir), env=env)

    def note_user(self, argv: list[str]) -> None:
        """useradd's user and uid (the account itself is not created)."""
        if argv[0] not in ("useradd", "adduser"):
            return
        uid, args = None, argv[1:]
        positional = []
        while args:
            arg = args.pop(0)
            if arg in ("--uid", "-u"):
                uid = int(args.pop(0))
            elif arg.startswith("--uid="):
                uid = int(arg.partition("=")[2])
            elif arg in ("--gid", "-g", "--shell", "-s", "--home-dir", "-d", "--groups", "-G"):
                args.pop(0)
            elif not arg.startswith("-"):
                positional.append(arg)
        if len(positional) != 1 or uid is None:
            raise NotEmulated(f"{shlex.join(argv)}: give the user's name and --uid")
        self.users[positional[0]] = uid

    def image(self, final: Stage) -> Image:
        workdir = "/"
        for step in final.instructions:
            if step.name == "WORKDIR":
                workdir = posixpath.join(workdir, step.value.strip())
        user_step = last(final, "USER")
        user = user_step.value.strip() if user_step else "root"
        name = user.split(":")[0]
        uid = int(name) if name.isdigit() else self.users.get(name, 0 if name == "root" else -1)
        if uid < 0:
            raise NotEmulated(f"USER {user}: not a user the Dockerfile creates")
        account = next((n for n, u in self.users.items() if u == uid), None)
        home = f"/home/{account}" if account else "/"
        cmd, check = last(final, "CMD"), last(final, "HEALTHCHECK")
        if cmd is None:
            raise NotEmulated("no CMD in the final stage")
        if last(final, "ENTRYPOINT") is not None:
            raise NotEmulated("ENTRYPOINT is not emulated")
        return Image(
            root=self.root(final),
            venv=self.venvs.get(final.index, self.into / f"stage-{final.index}" / "python"),
            env=dict(final.instructions[-1].env) if final.instructions else {},
            workdir=workdir,
            user=user,
            uid=uid,
            home=home,
            exposed=[p for i in final.instructions if i.name == "EXPOSE" for p in i.value.split()],
            cmd=exec_form(cmd.value),
            healthcheck=HealthCheck.parse(check.value) if check else None,
            users=dict(self.users),
        )


def describe(context: Path = PROJECT) -> Image:
    """The final stage as `build` would describe it, without building anything (its paths are
    under /docker-steps-not-built)."""
    builder = Builder(Path("/docker-steps-not-built"), context, parse(context / "Dockerfile"))
    final = builder.stages[-1]
    for step in final.instructions:
        if step.name == "RUN":
            for argv in commands(step.value):
                if argv[0] in USER_COMMANDS:
                    builder.note_user(argv)
    return builder.image(final)


def build(into: Path, context: Path = PROJECT) -> Image:
    """The image built into `into` (the first caller builds, under a lock; later callers, other
    processes included, load what it built)."""
    into.mkdir(parents=True, exist_ok=True)
    with (into / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = into / "image.json"
        if saved.exists():
            return Image.load(saved)
        image = Builder(into, context, parse(context / "Dockerfile")).build()
        for folder in ("home", image.home):  # useradd --create-home's folder, HOME
            image.host(folder).mkdir(parents=True, exist_ok=True)
        image.save(saved)
        return image


# --- the container -------------------------------------------------------------------------------


@contextmanager
def start(image: Image, env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The CMD as the container runs it, in WORKDIR with `env` (see Image.environ); SIGTERM at
    the end, as `docker stop` sends, then SIGKILL after its grace period."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            image.cmd,
            cwd=image.host(image.workdir),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_S)


def health_check(image: Image, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK command run once, as Docker runs it inside the container (a time-out is
    exit 1: unhealthy)."""
    assert image.healthcheck is not None, "the image has no HEALTHCHECK"
    check = image.healthcheck
    try:
        return subprocess.run(
            check.test,
            cwd=image.host(image.workdir),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=check.timeout,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(check.test, 1, "", f"timed out after {check.timeout}s")


def wait_healthy(
    image: Image, env: Mapping[str, str], proc: subprocess.Popen[bytes], spacing: float = 0.1
) -> int:
    """Run the health check until it passes; the number of runs it took. Checks come every
    `spacing` seconds rather than every --interval, within the time after which Docker would call
    the container unhealthy (--start-period plus --retries failed --interval's). Raises
    Unhealthy past that, or at once if the server exits."""
    assert image.healthcheck is not None, "the image has no HEALTHCHECK"
    check = image.healthcheck
    deadline = time.monotonic() + check.start_period + check.retries * check.interval
    runs = 0
    while True:
        runs += 1
        result = health_check(image, env)
        if result.returncode == 0:
            return runs
        if time.monotonic() > deadline:
            raise Unhealthy(f"still failing after {runs} runs:\n{result.stderr[-2000:]}")
        try:
            code = proc.wait(timeout=spacing)  # the pause between runs; notices an exit
        except subprocess.TimeoutExpired:
            continue
        raise Unhealthy(f"the server exited ({code}) before its health check passed")


def main() -> int:
    """Build into a temporary folder, start the image's command on a free loopback port, wait
    for its health check, then create one prediction and fetch its image."""
    with tempfile.TemporaryDirectory(prefix="docker-steps-") as folder:
        image = build(Path(folder) / "image")
        port = free_port()
        # Loopback only: the image's 0.0.0.0 would open the server to the network here.
        env = image.environ({"MOCK_SERVER_HOST": "127.0.0.1", "MOCK_SERVER_PORT": str(port)})
        with start(image, env, Path(folder) / "server.log") as proc:
            runs = wait_healthy(image, env, proc)
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=INSTALL_S) as http:
                created = http.post(
                    "/v1/models/black-forest-labs/flux-schnell/predictions",
                    json={"input": {"prompt": "a container"}},
                    headers={"Authorization": "Bearer r8_docker", "Prefer": "wait=30"},
                )
                created.raise_for_status()
                output = created.json()["output"][0]
                image_bytes = http.get(output).raise_for_status().content
        sys.stdout.write(
            f"built {image.root}\nCMD {shlex.join(image.cmd)} as USER {image.user}: healthy "
            f"after {runs} health check(s) on {url}\n{output}: {len(image_bytes)} bytes\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
