"""The official clients besides Python 1.x (tests/test_live_clients.py), each installed as users
install it, against the emulator installed from the wheel (tests/test_wheel.py's `installed`):

- the Stainless-generated Python client (PyPI `replicate-stainless`, imported as `replicate`,
  `base_url` including `/v1`), in a fresh venv of its own from the wheelhouse, never beside 1.x;
- the npm client `replicate` 1.4.0 with node, pinned in tests/js/package.json and installed by
  `make install` into .venv/js, so these tests need no network.

Each client runs a script (tests/js/*.mjs, or STAINLESS_SCRIPT below) against both base URLs. A
script prints one JSON object, step name -> result, and runs every step even after one failed; the
test checks each step and reports all that fail at once, with the server's stderr.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests import test_wheel
from tests.conftest import MODELS, PROJECT, child_environ, spawned_server
from tests.test_wheel import Installed, fresh_venv, offline_pip, run

# The wheel built and installed once per run (shared with tests/test_wheel.py and its workers).
installed = test_wheel.installed
shared_dir = test_wheel.shared_dir

SCRIPT_S = 120  # a client script that takes longer has hung
JS = PROJECT / "tests" / "js"
NODE_PREFIX = PROJECT / ".venv" / "js"  # where `make install` runs `npm ci`
NPM_VERSION = "1.4.0"
BASES = {"comet": "/replicate/v1", "replicate": "/v1"}
NOT_FOUND = "The requested resource could not be found."
UNAUTHENTICATED = "You did not pass a valid authentication token"
PAGE_SIZE = 100
# A prompt starting with "hold " keeps its prediction `starting` for an hour (times the time
# scale), so a cancel right after the create always finds it running.
SCENARIOS = """\
scenarios:
  - name: hold
    description: A prompt starting with "hold " stays starting for an hour of model time.
    match:
      prompt: "^hold "
    timing:
      setup: 3600
"""


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def emulator(installed: Installed, where: Path, *args: str) -> Iterator[Server]:
    """The installed `mock-server` on a free port, run from a folder outside the source tree."""
    where.mkdir(parents=True, exist_ok=True)
    command = (installed.bin("mock-server"), "--port", "0", *args)
    log = where / "stderr.log"
    with spawned_server(log=log, command=command, cwd=where) as (url, _):
        yield Server(url, log)


@pytest.fixture(scope="module")
def server(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Timings at 2% and the `hold` scenario; each test uses tokens of its own."""
    where = tmp_path_factory.mktemp("emulator")
    (where / "scenarios.yaml").write_text(SCENARIOS)
    args = ("--time-scale", "0.02", "--scenarios", str(where / "scenarios.yaml"))
    with emulator(installed, where, *args) as live:
        yield live


@pytest.fixture(scope="module")
def guarded(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Accepts only the token `good`."""
    where = tmp_path_factory.mktemp("guarded")
    with emulator(installed, where, "--time-scale", "0.02", "--api-token", "good") as live:
        yield live


@pytest.fixture(scope="module")
def manual(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Time moves only through POST /__admin/clock."""
    where = tmp_path_factory.mktemp("manual")
    with emulator(installed, where, "--clock", "manual") as live:
        yield live


def script_environ(**extra: str) -> dict[str, str]:
    """No developer's REPLICATE_* settings reach a client under test."""
    env = {k: v for k, v in child_environ().items() if not k.startswith("REPLICATE_")}
    return {**env, **extra}


def run_script(cmd: list[str], cwd: Path, env: dict[str, str], *servers: Server) -> Any:
    """Run a client script; its stdout is one JSON object."""
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=SCRIPT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{cmd[:2]} did not finish within {SCRIPT_S} s:\n{exc.stderr!r}")
    logs = "".join(f"\n--- server {s.url} stderr:\n{s.tail()}" for s in servers)
    assert done.returncode == 0, f"{cmd[:2]} exited {done.returncode}:\n{done.stderr}{logs}"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{cmd[:2]} printed no JSON:\n{done.stdout[-3000:]}\n{done.stderr}{logs}")


@dataclass
class Steps:
    """A script's results, checked step by step: every failing step is collected, then reported
    together by `verify`."""

    results: dict[str, Any]
    servers: tuple[Server, ...]
    failures: list[str] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[Any]:
        """Yields the step's value. A step that raised in the script, or whose checks fail, is
        recorded; for one that raised, the body gets None and its own errors are not reported."""
        result: dict[str, Any] | None = self.results.get(name)
        if result is None:
            broken: str | None = "the script did not run it"
        elif "ok" in result:
            broken = None
        else:
            broken = "raised " + json.dumps(result["error"], indent=1)
        try:
            yield None if result is None or broken else result["ok"]
        except Exception as exc:
            if broken is None:
                self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
        if broken:
            self.failures.append(f"{name}: {broken}")

    def verify(self) -> None:
        logs = "".join(f"\n--- server {s.url} stderr:\n{s.tail()}" for s in self.servers)
        assert not self.failures, "\n\n".join(self.failures) + logs


def delivered(value: Any, url: str, count: int | None = None) -> None:
    """Output files of the emulator: http:// URLs, which both clients leave as plain strings."""
    urls = value if count is not None else [value]
    assert isinstance(urls, list), value
    if count is not None:
        assert len(urls) == count, value
    for u in urls:
        assert isinstance(u, str), value
        assert re.fullmatch(re.escape(url) + r"/delivery/[a-z0-9]{26}/out-\d\.webp", u), u


def fetch_image(url: str) -> None:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    assert response.headers["content-type"] == "image/webp", response.headers
    assert response.content[:4] == b"RIFF", url


def newest_first(ids: list[str]) -> list[str]:
    return list(reversed(ids))


def two_problems(body: dict[str, Any]) -> None:
    """The 422 for flux-schnell's `num_outputs: 9` and `output_format: "gif"`: both named."""
    assert body["title"] == "Input validation failed", body
    fields = [f["field"] for f in body["invalid_fields"]]
    assert fields == ["input.num_outputs", "input.output_format"], body
    lines = body["detail"].splitlines()
    assert len(lines) == 2, body
    assert lines[0] == "- input.num_outputs: Must be less than or equal to 4", body
    assert lines[1].startswith("- input.output_format: "), body


def npm_error_body(message: str) -> Any:
    """npm's ApiError message: `Request to <url> failed with status <code> <text>: <body>.`"""
    return json.loads(message.split(": ", 1)[1].removesuffix("."))


def journal(server: Server, path: str, method: str) -> list[dict[str, Any]]:
    """What the server received (its admin request journal), newest first."""
    query = {"path": path, "method": method, "limit": "1000"}
    response = httpx.get(f"{server.url}/__admin/requests", params=query, timeout=10)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def api_get(base_url: str, token: str, path: str) -> Any:
    """What the API answers `token` for a GET of `path` (the same call a client made)."""
    auth = {"Authorization": f"Bearer {token}"}
    response = httpx.get(base_url + path, headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def answered_in_one_request(server: Server, prefix: str, output_url: str) -> None:
    """A run in sync mode: the create answered `succeeded` and the client never polled."""
    pid = output_url.split("/delivery/", 1)[1].split("/", 1)[0]
    assert journal(server, f"{prefix}/predictions/{pid}", "GET") == [], f"{pid} was polled"
    creates = journal(server, f"{prefix}/models/", "POST")
    mine = [c for c in creates if f'"id":"{pid}"' in c["response_body"]]
    assert len(mine) == 1, f"no create answered {pid}"
    status = re.search(r'"status":"(\w+)"', mine[0]["response_body"])
    assert status is not None, mine[0]
    assert status.group(1) == "succeeded", mine[0]


# --------------------------------------------------------------------------------------------
# The Stainless-generated Python client (replicate-stainless)
# --------------------------------------------------------------------------------------------

STAINLESS_SCRIPT = r'''
"""replicate-stainless against the emulator; argv[1] is a JSON config, stdout one JSON object."""
import importlib.metadata
import json
import sys
import traceback

from replicate import Replicate

config = json.loads(sys.argv[1])
results = {}


def client(purpose, base_url=None, **kwargs):
    """One token per purpose, so each list sees only its own predictions. Strict response
    validation: a field of the wrong type fails the call instead of passing through."""
    kwargs.setdefault("bearer_token", f"{config['token']}_{purpose}")
    return Replicate(
        base_url=base_url or config["base_url"],
        max_retries=0,
        timeout=20,
        _strict_response_validation=True,
        **kwargs,
    )


def jsonable(value):
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return {"type": type(value).__name__, "url": str(getattr(value, "url", value))}


def summary(p):
    return {
        "id": p.id,
        "model": p.model,
        "version": p.version,
        "status": p.status,
        "output": jsonable(p.output),
        "error": p.error,
        "logs": p.logs,
        "urls": p.urls.model_dump(exclude_none=True),
        "created_at": p.created_at.isoformat(),
    }


def described(exc):
    return {
        "type": type(exc).__name__,
        "status": getattr(exc, "status_code", None),
        "body": getattr(exc, "body", None),
        "message": str(exc),
    }


def step(fn):
    try:
        results[fn.__name__] = {"ok": fn()}
    except Exception as exc:
        results[fn.__name__] = {"error": {**described(exc), "traceback": traceback.format_exc()}}
    return fn


def thrown(call):
    try:
        call()
    except Exception as exc:
        return {"thrown": True, **described(exc)}
    return {"thrown": False}


main = client("main")


@step
def environment():
    try:
        legacy = importlib.metadata.version("replicate")
    except importlib.metadata.PackageNotFoundError:
        legacy = None
    return {
        "replicate_stainless": importlib.metadata.version("replicate-stainless"),
        "replicate_1x": legacy,
        "base_url": str(main.base_url),
    }


@step
def run_sync():
    return jsonable(
        main.run("black-forest-labs/flux-schnell", input={"prompt": "a fox", "num_outputs": 2})
    )


@step
def run_single_output():
    return jsonable(main.run("black-forest-labs/flux-1.1-pro", input={"prompt": "an owl"}))


@step
def create_by_version():
    created = main.predictions.create(
        version="black-forest-labs/flux-dev", input={"prompt": "by version"}
    )
    done = main.predictions.wait(created.id)
    return {"created": summary(created), "done": summary(done)}


@step
def models_predictions_create():
    created = main.models.predictions.create(
        model_owner="black-forest-labs", model_name="flux-schnell", input={"prompt": "by model"}
    )
    got = main.predictions.get(prediction_id=created.id)
    done = main.predictions.wait(created.id)
    return {"created": summary(created), "got": summary(got), "done": summary(done)}


@step
def models_predictions_create_prefer_wait():
    created = main.models.predictions.create(
        model_owner="black-forest-labs",
        model_name="flux-2-pro",
        input={"prompt": "prefer wait"},
        prefer="wait=30",
    )
    return summary(created)


@step
def cancel():
    created = main.models.predictions.create(
        model_owner="black-forest-labs", model_name="flux-pro", input={"prompt": "hold cancel"}
    )
    canceled = main.predictions.cancel(prediction_id=created.id)
    got = main.predictions.get(prediction_id=created.id)
    return {"created": summary(created), "canceled": summary(canceled), "got": summary(got)}


@step
def list_first_page():
    lister = client("list")
    made = [
        lister.models.predictions.create(
            model_owner="black-forest-labs", model_name="flux-schnell", input={"prompt": f"l{i}"}
        ).id
        for i in range(3)
    ]
    page = lister.predictions.list()
    return {
        "created": made,
        "ids": [p.id for p in page.results],
        "next": page.next,
        "has_next_page": page.has_next_page(),
    }


@step
def list_window():
    windowed = client("window")
    made = [
        windowed.models.predictions.create(
            model_owner="black-forest-labs", model_name="flux-schnell", input={"prompt": f"w{i}"}
        )
        for i in range(3)
    ]
    a, b, c = (p.created_at for p in made)

    def ids(**filters):
        return [p.id for p in windowed.predictions.list(**filters)]

    return {
        "created": [p.id for p in made],
        "created_at": [p.created_at.isoformat() for p in made],
        # datetimes go out as isoformat(): 2025-01-01T00:00:00.123456+00:00
        "after_b": ids(created_after=b),
        "before_b": ids(created_before=b),
        "a_to_c": ids(created_after=a, created_before=c),
        # strings go out as given
        "after_b_z": ids(created_after=b.isoformat().replace("+00:00", "Z")),
        "before_a": ids(created_before=a),
    }


@step
def auto_pagination():
    pager = client("page")
    made = [
        pager.models.predictions.create(
            model_owner="black-forest-labs", model_name="flux-schnell", input={"prompt": f"p{i}"}
        )
        for i in range(config["many"])
    ]
    first = pager.predictions.list()
    return {
        "created": [p.id for p in made],
        "first": {"count": len(first.results), "next": first.next},
        "all": [p.id for p in pager.predictions.list()],
        "pages": [len(page.results) for page in pager.predictions.list().iter_pages()],
        "window": [p.id for p in pager.predictions.list(created_after=made[2].created_at)],
    }


@step
def models_get():
    returned = main.models.get(model_owner="black-forest-labs", model_name="flux-schnell")
    raw = main.models.with_raw_response.get(
        model_owner="black-forest-labs", model_name="flux-schnell"
    )
    return {"returned": jsonable(returned), "status": raw.status_code, "json": raw.json()}


@step
def account_get():
    return main.account.get().model_dump(mode="json")


@step
def models_list():
    return [f"{m.owner}/{m.name}" for m in main.models.list()]


@step
def versions_list():
    # replicate-stainless 0.6.0 types this call as returning None: the raw response has the page.
    raw = main.models.versions.with_raw_response.list(
        model_owner="black-forest-labs", model_name="flux-schnell"
    )
    return {"returned": jsonable(raw.parse()), "status": raw.status_code, "json": raw.json()}


@step
def files_api():
    files = client("files")
    created = files.files.create(
        content=("notes.txt", b"stainless bytes", "text/plain"),
        filename="notes.txt",
        type="text/plain",
        # A JSON text, as the API documents it (a dict goes out as `metadata[case]` form fields).
        metadata=json.dumps({"case": 5}),
    )
    got = files.files.get(file_id=created.id)
    listed = [f.id for f in files.files.list()]
    # delete() is typed as returning None: the raw response has the status.
    deleted = files.files.with_raw_response.delete(file_id=created.id)
    return {
        "created": created.model_dump(mode="json"),
        "got": got.model_dump(mode="json"),
        "listed": listed,
        "deleted": {"returned": jsonable(deleted.parse()), "status": deleted.status_code},
        "after": thrown(lambda: files.files.get(file_id=created.id)),
    }


@step
def webhook_secret():
    return main.webhooks.default.secret.get().model_dump(mode="json")


@step
def invalid_input():
    return thrown(
        lambda: main.run(
            "black-forest-labs/flux-schnell", input={"prompt": "too many", "num_outputs": 9}
        )
    )


@step
def invalid_inputs():
    return thrown(
        lambda: main.predictions.create(
            version="black-forest-labs/flux-schnell",
            input={"prompt": "two problems", "num_outputs": 9, "output_format": "gif"},
        )
    )


@step
def missing_prompt():
    return thrown(
        lambda: main.models.predictions.create(
            model_owner="black-forest-labs", model_name="flux-dev", input={}
        )
    )


@step
def not_found():
    return {
        "prediction": thrown(
            lambda: main.predictions.get(prediction_id="zzzzzzzzzzzzzzzzzzzzzzzzzz")
        ),
        "model": thrown(
            lambda: main.models.get(model_owner="black-forest-labs", model_name="flux-none")
        ),
    }


@step
def refused_token():
    refused = client("x", base_url=config["guarded_base_url"], bearer_token="r8_refused")
    # The token from REPLICATE_API_TOKEN (set to the accepted one by the test).
    accepted = client("x", base_url=config["guarded_base_url"], bearer_token=None)
    return {
        "refused": thrown(lambda: refused.predictions.list()),
        "accepted_token": accepted.bearer_token,
        "accepted": len(accepted.predictions.list().results),
    }


print(json.dumps(results))
'''


@pytest.fixture(scope="session")
def stainless_python(shared_dir: Path) -> Path:
    """`pip install replicate-stainless` into a fresh venv of its own (once per run, shared by the
    xdist workers like the wheel's venv)."""
    with (shared_dir / "stainless.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        venv = shared_dir / "stainless-venv"
        done = shared_dir / "stainless-done"
        if not done.exists():
            fresh_venv(venv)
            # replicate-stainless 0.6.0 imports `packaging` (replicate/lib/_schema.py) without
            # declaring it, so `import replicate` fails in a bare venv: users add it themselves.
            pip = (venv / "bin" / "pip", "install", "--quiet")
            run(*pip, "replicate-stainless", "packaging", cwd=shared_dir, env=offline_pip())
            done.touch()
    return venv / "bin" / "python"


@pytest.mark.parametrize("base", sorted(BASES))
def test_stainless_python_client(
    stainless_python: Path, server: Server, guarded: Server, tmp_path: Path, base: str
) -> None:
    base_url = server.url + BASES[base]
    script = tmp_path / "stainless_client.py"
    script.write_text(STAINLESS_SCRIPT)
    config = {
        "base_url": base_url,
        "guarded_base_url": guarded.url + BASES[base],
        "token": f"r8_stainless_{base}",
        "many": PAGE_SIZE + 5,
    }
    env = script_environ(REPLICATE_API_TOKEN="good", REPLICATE_POLL_INTERVAL="0.02")
    results = run_script(
        [str(stainless_python), str(script), json.dumps(config)], tmp_path, env, server, guarded
    )
    steps = Steps(results, (server, guarded))

    with steps.step("environment") as out:
        assert out["replicate_stainless"], out
        assert out["replicate_1x"] is None, "replicate 1.x must not share the Stainless venv"
        assert out["base_url"] == base_url + "/", out

    with steps.step("run_sync") as out:
        delivered(out, server.url, count=2)
        fetch_image(out[0])
        answered_in_one_request(server, BASES[base], out[0])

    with steps.step("run_single_output") as out:
        delivered(out, server.url)

    with steps.step("create_by_version") as out:
        created, done = out["created"], out["done"]
        assert created["status"] == "starting", created
        assert (created["model"], created["version"]) == ("black-forest-labs/flux-dev", "hidden")
        assert created["urls"]["get"] == f"{base_url}/predictions/{created['id']}", created
        assert created["urls"]["cancel"] == f"{base_url}/predictions/{created['id']}/cancel"
        assert (done["id"], done["status"], done["error"]) == (created["id"], "succeeded", None)
        delivered(done["output"], server.url, count=1)
        assert "100%|" in done["logs"], done["logs"]

    with steps.step("models_predictions_create") as out:
        created, got, done = out["created"], out["got"], out["done"]
        assert created["status"] == "starting", created
        assert created["model"] == "black-forest-labs/flux-schnell", created
        assert got["id"] == created["id"], got
        assert got["status"] in ("starting", "processing", "succeeded"), got
        assert done["status"] == "succeeded", done
        delivered(done["output"], server.url, count=1)

    with steps.step("models_predictions_create_prefer_wait") as out:
        assert out["status"] == "succeeded", out
        delivered(out["output"], server.url)

    with steps.step("cancel") as out:
        created, canceled, got = out["created"], out["canceled"], out["got"]
        assert created["status"] == "starting", created
        assert (canceled["id"], canceled["status"]) == (created["id"], "canceled"), canceled
        assert (got["status"], got["output"]) == ("canceled", None), got

    with steps.step("list_first_page") as out:
        assert out["ids"] == newest_first(out["created"]), out
        assert (out["next"], out["has_next_page"]) == (None, False), out

    with steps.step("list_window") as out:
        a, b, c = out["created"]
        assert len(set(out["created_at"])) == 3, out["created_at"]
        assert out["after_b"] == [c, b], out  # created_after is inclusive
        assert out["before_b"] == [a], out  # created_before is exclusive
        assert out["a_to_c"] == [b, a], out
        assert out["after_b_z"] == [c, b], out
        assert out["before_a"] == [], out
        # what went out: ISO 8601 with an offset (datetime.isoformat()) or as given (a str)
        sent = [
            dict(parse_qsl(e["query"]))
            for e in journal(server, f"{BASES[base]}/predictions", "GET")
            if "created_" in e["query"]
        ]
        b_at = out["created_at"][1]
        assert {"created_after": b_at} in sent, sent
        assert {"created_after": b_at.replace("+00:00", "Z")} in sent, sent

    with steps.step("auto_pagination") as out:
        made = out["created"]
        assert len(set(made)) == PAGE_SIZE + 5, len(set(made))
        assert out["first"]["count"] == PAGE_SIZE, out["first"]
        assert str(out["first"]["next"]).startswith(f"{base_url}/predictions?"), out["first"]
        assert out["all"] == newest_first(made), (len(out["all"]), out["all"][:3])
        assert out["pages"] == [PAGE_SIZE, 5], out["pages"]
        # the window is kept from page to page
        assert out["window"] == newest_first(made[2:]), (len(out["window"]), len(made))

    with steps.step("models_get") as out:
        # replicate-stainless 0.6.0 types this call as returning None; the body is still there.
        assert (out["returned"], out["status"]) == (None, 200), out
        model = out["json"]
        assert (model["owner"], model["name"]) == ("black-forest-labs", "flux-schnell"), model
        schema = model["latest_version"]["openapi_schema"]["components"]["schemas"]["Input"]
        assert "prompt" in schema["properties"], schema

    main_token = f"r8_stainless_{base}_main"

    with steps.step("account_get") as out:
        assert out["type"] == "user", out
        account = api_get(base_url, main_token, "/account")
        assert (out["username"], out["name"]) == (account["username"], account["name"]), out
        assert out["username"].startswith("mock-"), out

    with steps.step("models_list") as out:
        assert sorted(out) == sorted(f"black-forest-labs/{m}" for m in MODELS), out

    with steps.step("versions_list") as out:
        assert (out["returned"], out["status"]) == (None, 200), out
        latest = api_get(base_url, main_token, "/models/black-forest-labs/flux-schnell")
        assert [v["id"] for v in out["json"]["results"]] == [latest["latest_version"]["id"]], out
        assert out["json"]["next"] is None, out

    with steps.step("files_api") as out:
        created = out["created"]
        assert (created["name"], created["content_type"], created["size"]) == (
            "notes.txt",
            "text/plain",
            len(b"stainless bytes"),
        ), created
        assert created["metadata"] == {"case": 5}, created
        assert created["urls"]["get"] == f"{base_url}/files/{created['id']}", created
        assert out["got"] == created, out
        assert out["listed"] == [created["id"]], out
        assert out["deleted"] == {"returned": None, "status": 204}, out
        assert (out["after"]["type"], out["after"]["status"]) == ("NotFoundError", 404), out

    with steps.step("webhook_secret") as out:
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", out["key"]), out
        assert out == api_get(base_url, main_token, "/webhooks/default/secret"), out

    with steps.step("invalid_input") as out:
        assert (out["thrown"], out["type"], out["status"]) == (
            True,
            "UnprocessableEntityError",
            422,
        ), out
        body = out["body"]
        assert body["title"] == "Input validation failed", body
        assert body["detail"] == "- input.num_outputs: Must be less than or equal to 4\n", body
        assert [f["field"] for f in body["invalid_fields"]] == ["input.num_outputs"], body
        assert "input.num_outputs: Must be less than or equal to 4" in out["message"], out

    with steps.step("invalid_inputs") as out:
        assert (out["type"], out["status"]) == ("UnprocessableEntityError", 422), out
        two_problems(out["body"])

    with steps.step("missing_prompt") as out:
        assert (out["type"], out["status"]) == ("UnprocessableEntityError", 422), out
        assert out["body"]["detail"] == "- input: prompt is required\n", out
        assert out["body"]["invalid_fields"][0]["type"] == "required", out

    with steps.step("not_found") as out:
        for what in ("prediction", "model"):
            assert (out[what]["type"], out[what]["status"]) == ("NotFoundError", 404), out
            assert out[what]["body"]["detail"] == NOT_FOUND, out

    with steps.step("refused_token") as out:
        refused = out["refused"]
        assert (refused["type"], refused["status"]) == ("AuthenticationError", 401), refused
        assert refused["body"]["detail"] == UNAUTHENTICATED, refused
        assert out["accepted_token"] == "good", out
        assert isinstance(out["accepted"], int), out

    steps.verify()


# --------------------------------------------------------------------------------------------
# The npm client (replicate 1.4.0) with node
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The npm client as `make install` installed it, pinned by tests/js/package-lock.json."""
    if shutil.which("node") is None:  # CI has node: there these tests always run
        pytest.skip("node is not on PATH: the npm client's tests need Node.js 18+")
    modules = NODE_PREFIX / "node_modules"
    lock = NODE_PREFIX / "package-lock.json"
    installed_lock = lock.read_text() if lock.is_file() else None
    if installed_lock != (JS / "package-lock.json").read_text():
        pytest.fail(
            f"{modules} is missing or older than tests/js/package-lock.json: run the npm line of "
            "`make install`: mkdir -p .venv/js && cp tests/js/package.json "
            "tests/js/package-lock.json .venv/js/ && npm ci --prefix .venv/js"
        )
    package = json.loads((modules / "replicate" / "package.json").read_text())
    assert package["version"] == NPM_VERSION, package["version"]
    return modules


def node_script(name: str, node_modules: Path, where: Path) -> Path:
    """A copy of tests/js/<name> in a folder whose node_modules is the installed one, so that
    `import Replicate from "replicate"` resolves as it does in a user's project."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "node_modules").symlink_to(node_modules, target_is_directory=True)
    shutil.copy(JS / "package.json", where / "package.json")
    return Path(shutil.copy(JS / name, where / name))


def run_node(script: Path, config: dict[str, Any], *servers: Server) -> Any:
    env = script_environ(NODE_NO_WARNINGS="1")
    return run_script(["node", str(script), json.dumps(config)], script.parent, env, *servers)


@pytest.mark.parametrize("base", sorted(BASES))
def test_npm_client(
    node_modules: Path, server: Server, guarded: Server, tmp_path: Path, base: str
) -> None:
    base_url = server.url + BASES[base]
    script = node_script("client.mjs", node_modules, tmp_path / "project")
    config = {
        "baseUrl": base_url,
        "guardedBaseUrl": guarded.url + BASES[base],
        "token": f"r8_npm_{base}",
    }
    steps = Steps(run_node(script, config, server, guarded), (server, guarded))

    with steps.step("run_block") as out:
        delivered(out, server.url, count=2)
        fetch_image(out[1])
        answered_in_one_request(server, BASES[base], out[1])

    with steps.step("run_single_output") as out:
        delivered(out, server.url)

    for name, model in (
        ("create_and_wait", "black-forest-labs/flux-dev"),
        ("create_by_version_and_wait", "black-forest-labs/flux-dev"),
    ):
        with steps.step(name) as out:
            created, done = out["created"], out["done"]
            assert created["status"] == "starting", created
            assert (created["model"], created["version"]) == (model, "hidden"), created
            assert created["urls"]["get"] == f"{base_url}/predictions/{created['id']}", created
            assert (done["id"], done["status"]) == (created["id"], "succeeded"), done
            delivered(done["output"], server.url, count=1)

    with steps.step("create_wait_true") as out:
        assert out["status"] == "succeeded", out
        delivered(out["output"], server.url, count=1)

    with steps.step("get") as out:
        assert out["got"]["id"] == out["created"]["id"], out
        assert out["got"]["model"] == "black-forest-labs/flux-schnell", out

    with steps.step("cancel") as out:
        created, canceled, got = out["created"], out["canceled"], out["got"]
        assert created["status"] == "starting", created
        assert (canceled["id"], canceled["status"]) == (created["id"], "canceled"), canceled
        assert got["status"] == "canceled", got

    with steps.step("list_and_paginate") as out:
        made = out["created"]
        assert len(set(made)) == 105, len(set(made))
        first = out["first"]
        assert first["ids"] == newest_first(made)[:PAGE_SIZE], first["ids"][:3]
        assert str(first["next"]).startswith(f"{base_url}/predictions?"), first["next"]
        assert first["previous"] is None, first
        assert [len(page) for page in out["pages"]] == [PAGE_SIZE, 5], out["pages"]
        assert [i for page in out["pages"] for i in page] == newest_first(made), "lost or repeated"

    with steps.step("models_get") as out:
        assert (out["owner"], out["name"]) == ("black-forest-labs", "flux-schnell"), out
        assert out["latest_version"]["id"], out

    def api(path: str) -> Any:
        return api_get(base_url, f"r8_npm_{base}_main", path)

    with steps.step("account") as out:
        assert out["type"] == "user", out
        assert out["username"].startswith("mock-"), out
        assert out == api("/account"), out

    with steps.step("models_list") as out:
        assert (out["next"], out["previous"]) == (None, None), out
        assert sorted(out["models"]) == sorted(f"black-forest-labs/{m}" for m in MODELS), out

    with steps.step("versions_list") as out:
        latest = api("/models/black-forest-labs/flux-schnell")["latest_version"]
        assert [v["id"] for v in out["results"]] == [latest["id"]], out
        assert out["next"] is None, out

    with steps.step("webhook_secret") as out:
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{32}", out["key"]), out
        assert out == api("/webhooks/default/secret"), out

    with steps.step("invalid_input") as out:
        assert (out["thrown"], out["name"], out["status"]) == (True, "ApiError", 422), out
        message = out["message"]
        assert message.startswith(
            f"Request to {base_url}/models/black-forest-labs/flux-schnell/predictions failed "
            "with status 422 Unprocessable Entity: "
        ), message
        body = npm_error_body(message)  # the body as the server sent it
        assert body["detail"] == "- input.num_outputs: Must be less than or equal to 4\n", body
        assert [f["field"] for f in body["invalid_fields"]] == ["input.num_outputs"], body

    with steps.step("invalid_inputs") as out:
        assert (out["name"], out["status"]) == ("ApiError", 422), out
        two_problems(npm_error_body(out["message"]))

    with steps.step("missing_prompt") as out:
        assert (out["name"], out["status"]) == ("ApiError", 422), out
        assert npm_error_body(out["message"])["detail"] == "- input: prompt is required\n", out

    with steps.step("not_found") as out:
        for what in ("prediction", "model"):
            assert (out[what]["name"], out[what]["status"]) == ("ApiError", 404), out
            assert NOT_FOUND in out[what]["message"], out

    with steps.step("refused_token") as out:
        assert (out["refused"]["name"], out["refused"]["status"]) == ("ApiError", 401), out
        assert UNAUTHENTICATED in out["refused"]["message"], out
        assert isinstance(out["accepted"], int), out

    steps.verify()


@pytest.mark.parametrize("base", sorted(BASES))
def test_npm_run_progress_grows(
    node_modules: Path, manual: Server, tmp_path: Path, base: str
) -> None:
    """`run(ref, options, progress)`: the callback sees flux-dev's progress grow step by step to
    100% (the server's clock moves a quarter second before each poll)."""
    script = node_script("progress.mjs", node_modules, tmp_path / "project")
    config = {
        "baseUrl": manual.url + BASES[base],
        "adminUrl": f"{manual.url}/__admin",
        "token": f"r8_npm_progress_{base}",
        "advance": 0.25,
    }
    out = run_node(script, config, manual)
    context = json.dumps(out, indent=1)[-4000:] + f"\n--- server stderr:\n{manual.tail()}"
    assert "error" not in out, context
    delivered(out["output"], manual.url, count=1)
    seen = out["seen"]
    assert seen[0] == {"status": "starting", "progress": None}, context
    assert seen[-1]["status"] == "succeeded", context
    assert seen[-1]["progress"] == {"percent": 100, "current": 28, "total": 28}, context
    running = [
        s["progress"]["current"] for s in seen if s["status"] == "processing" and s["progress"]
    ]
    assert len(set(running)) >= 5, context  # flux-dev: 3.2 s of steps, seen every 0.25 s
    steps = [s["progress"]["current"] for s in seen if s["progress"]]
    assert steps == sorted(steps), context  # never goes back
