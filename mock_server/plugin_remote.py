"""The pytest plugin's handle on a server. `ServerHandle` is what the in-process and the shared
variants have in common (URLs, the token, the admin API over HTTP, `finish`, `predictions`,
`client`); `RemoteServer` is the shared variant (`--mock-server-url`): no server is started, every
call goes through /__admin, and a job sees and resets only what its own token made.
"""

from __future__ import annotations

import importlib.metadata
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from mock_server.auth import owner_of
from mock_server.journal import redact
from mock_server.scenarios import ScenarioError

ADMIN_TIMEOUT = 30.0
# What a server holds for every job at once: a shared server cannot set them for one test.
GLOBAL_OPTIONS = ("clock", "seed", "time_scale", "output_urls")
JOURNAL_LIMIT = 10_000  # the most /__admin/requests gives; this job's entries are among them


def new_token() -> str:
    """A token of this pytest session's own (each xdist worker runs its own session)."""
    return f"r8_mock_{uuid.uuid4().hex}"


def python_client_base(url: str) -> str:
    """The base URL the installed official Python client takes: 1.x appends `/v1` itself, the
    Stainless-generated 2.x (`replicate-stainless`, or `replicate` 2.x) does not."""
    try:
        importlib.metadata.version("replicate-stainless")
        return url + "/replicate/v1"
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        major = importlib.metadata.version("replicate").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        major = "1"
    return url + ("/replicate" if major in ("0", "1") else "/replicate/v1")


class AdminError(RuntimeError):
    """The admin API answered with an error; `status` and `body` are its answer."""

    def __init__(self, method: str, url: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        detail = _detail(body)
        super().__init__(f"{method} {url} answered {status}" + (f": {detail}" if detail else ""))


class SharedServerError(RuntimeError):
    """What a test asked cannot be done on the shared server (global settings, an old server)."""


def _detail(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body or "")
    detail = body.get("detail") or body.get("title") or ""
    return str(detail).strip()


class ServerHandle(ABC):
    """What a test gets from the `mock_server` fixture: URLs, the token, and control of the
    server's clock, predictions, scenarios and journal."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_file: Path | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.replicate_base_url = self.url + "/replicate"  # replicate (Python) 1.x
        self.cometapi_url = self.url + "/replicate/v1"  # replicate (npm), replicate (Python) 2.x
        self.v1_url = self.url + "/v1"
        self.python_client_url = python_client_base(self.url)  # for the installed Python client
        self.token = token
        self.headers = {"Authorization": f"Bearer {self.token}"}
        # With `tls=True`: the CA to trust (the fixture sets SSL_CERT_FILE to it for the test).
        self.ca_file = ca_file
        self.admin_token = admin_token  # sent as a bearer token on /__admin calls

    @abstractmethod
    def reset(self, **changes: object) -> None:
        """Forget predictions, journal entries and added scenarios; `changes`: seed, clock,
        time_scale, output_urls."""

    @abstractmethod
    def now(self) -> datetime:
        """The server's clock."""

    @abstractmethod
    def add_scenario(self, **fields: Any) -> None:
        """Add a scenario for this test (fields as POST /__admin/scenarios takes)."""

    @abstractmethod
    def remove_scenario(self, name: str) -> None:
        """Remove a scenario by name (KeyError when there is none)."""

    @abstractmethod
    def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Journal entries, newest first; `path` matches as a prefix."""

    @abstractmethod
    def _advance(self, seconds: float) -> datetime: ...

    @abstractmethod
    def _set_time(self, when: datetime) -> datetime: ...

    def advance(self, seconds: float) -> datetime:
        """Move the manual clock forward; returns the new time."""
        if seconds < 0:
            raise ValueError("cannot advance the clock by a negative number of seconds")
        return self._advance(seconds)

    def set_time(self, when: datetime) -> datetime:
        """Set the manual clock (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("set_time needs an aware datetime (e.g. tzinfo=UTC)")
        return self._set_time(when)

    def finish(
        self, prediction_id: str, outcome: str = "succeed", error: str | None = None
    ) -> dict[str, Any]:
        """End a running prediction now: `succeed`, `fail` (with `error`) or `cancel`; returns
        the prediction as the admin API shows it."""
        if outcome not in ("succeed", "fail", "cancel"):
            raise ValueError(f"outcome must be succeed, fail or cancel, not {outcome!r}")
        body = {"error": error} if error is not None and outcome == "fail" else None
        path = f"/__admin/predictions/{urllib.parse.quote(prediction_id, safe='')}/{outcome}"
        prediction: dict[str, Any] = self._admin("POST", path, body)["prediction"]
        return prediction

    def predictions(self) -> list[dict[str, Any]]:
        """Predictions, newest first, as the admin API shows them (`owner` and `prediction`)."""
        return list(self._admin("GET", "/__admin/predictions")["predictions"])

    def client(self, **kwargs: Any) -> Any:
        """The installed official Python client for this server: `replicate.Client` (1.x) or
        `replicate.Replicate` (the Stainless-generated 2.x); needs the `replicate` package."""
        import replicate  # optional: only this helper needs it

        kwargs.setdefault("base_url", self.python_client_url)
        if hasattr(replicate, "Replicate"):
            kwargs.setdefault("bearer_token", self.token)
            return replicate.Replicate(**kwargs)
        kwargs.setdefault("api_token", self.token)
        return replicate.client.Client(**kwargs)

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, object] | None = None,
    ) -> tuple[int, Any]:
        """One admin call over HTTP: its status and JSON body, errors included."""
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        data = json.dumps(body).encode() if body is not None else None
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        req = urllib.request.Request(url, data, headers, method=method)
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(req, timeout=ADMIN_TIMEOUT, context=context) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SharedServerError(
                f"cannot reach the mock server at {self.url} ({method} {path}): {reason}"
            ) from None
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, raw.decode("utf-8", errors="replace")

    def _admin(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """An admin call that must succeed (AdminError otherwise)."""
        status, data = self._send(method, path, body, query)
        if not 200 <= status < 300 or not isinstance(data, dict):
            raise AdminError(method, self.url + path, status, data)
        return data


class RemoteServer(ServerHandle):
    """The `mock_server` fixture's handle on a shared server (`--mock-server-url`): only the
    admin API, and only this job's token's predictions, journal entries and scenarios."""

    def __init__(self, url: str, token: str, *, admin_token: str | None = None) -> None:
        super().__init__(url, token, admin_token=admin_token)
        self.owner = owner_of(token)  # as /__admin/predictions shows the owner
        # Scenarios this test added, by name: the token their `match` was given (None: none).
        self._added: dict[str, str | None] = {}

    def for_test(self) -> RemoteServer:
        """A handle of its own for one test (its own record of the scenarios it adds)."""
        return RemoteServer(self.url, self.token, admin_token=self.admin_token)

    def health(self) -> dict[str, Any]:
        return self._admin("GET", "/__admin/health")

    def check(self, wanted: Mapping[str, Any], what: str) -> None:
        """SharedServerError unless the server already runs with `wanted` (clock, seed,
        time_scale, output_urls): those are the server's, for every job at once."""
        if not set(wanted) & set(GLOBAL_OPTIONS):
            return
        health = self.health()
        running = {
            "clock": (health.get("clock") or {}).get("mode"),
            "seed": health.get("seed"),
            "time_scale": health.get("time_scale"),
            "output_urls": health.get("output_urls"),  # not reported by older servers
        }
        conflicts = []
        for key in GLOBAL_OPTIONS:
            if key not in wanted or _same(key, wanted[key], running[key]):
                continue
            have = f"{running[key]!r}" if running[key] is not None else "(not reported)"
            conflicts.append(f"{key}={wanted[key]!r}, but it runs with {key}={have}")
        if conflicts:
            raise SharedServerError(
                f"{what} cannot apply on the shared mock server at {self.url} "
                f"(--mock-server-url): {'; '.join(conflicts)}. Its clock, seed, time scale and "
                "output URLs are the same for every job using it, so a test cannot change them: "
                "start the shared server with the settings these tests need, or run them without "
                "--mock-server-url (each session then starts its own server)."
            )

    def reset(self, **changes: object) -> None:
        """Forget this token's predictions, files, journal entries and webhook attempts, and the
        scenarios this test added; other jobs' stay. `changes` must be what the server runs."""
        unknown = sorted(set(changes) - set(GLOBAL_OPTIONS))
        if unknown:
            raise TypeError(f"reset() got unexpected options {unknown}")
        if changes:
            args = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            self.check(changes, f"mock_server.reset({args})")
        self.remove_added_scenarios()
        status, data = self._send("POST", "/__admin/reset", {"token": self.token})
        if status == 400 and "reset option" in _detail(data):
            raise SharedServerError(
                f"the shared mock server at {self.url} cannot reset one token's state: "
                f'POST /__admin/reset {{"token": ...}} answered 400 ({_detail(data)}). It is older '
                "than per-token reset, and a full reset would delete every other job's "
                "predictions: upgrade the shared server, or run without --mock-server-url."
            )
        if not 200 <= status < 300:
            raise AdminError("POST", self.url + "/__admin/reset", status, data)

    def release(self) -> None:
        """At the session's end: free what this token left on the server (best effort)."""
        try:
            self.remove_added_scenarios()
            self._send("POST", "/__admin/reset", {"token": self.token})
        except (SharedServerError, AdminError):
            pass

    def now(self) -> datetime:
        return _parse_time(self._admin("GET", "/__admin/clock")["now"])

    def _advance(self, seconds: float) -> datetime:
        return self._move({"advance": seconds})

    def _set_time(self, when: datetime) -> datetime:
        return self._move({"set": when.isoformat()})

    def _move(self, body: dict[str, Any]) -> datetime:
        status, data = self._send("POST", "/__admin/clock", body)
        if status == 409:
            mode = (self.health().get("clock") or {}).get("mode")
            raise RuntimeError(
                f"the shared mock server's clock at {self.url} is {mode!r}, not 'manual': only a "
                "server started with --clock manual can be moved (and moving it moves it for "
                "every job using that server)"
            )
        if not 200 <= status < 300 or not isinstance(data, dict):
            raise AdminError("POST", self.url + "/__admin/clock", status, data)
        return _parse_time(data["now"])

    def add_scenario(self, **fields: Any) -> None:
        """Add a scenario on the shared server, where every job's requests see it: one with a
        `match` and no `match.token` is given this job's token, so it applies only here."""
        data = dict(fields)
        match = data.get("match")
        token = None
        if isinstance(match, Mapping) and match:
            token = match.get("token", self.token)
            data["match"] = {**match, "token": token}
        status, body = self._send("POST", "/__admin/scenarios", data)
        if status in (400, 422):
            problems = body.get("invalid_fields", []) if isinstance(body, dict) else []
            where = "; ".join(f"{p.get('field')}: {p.get('description')}" for p in problems)
            raise ScenarioError(f"scenario: {where or _detail(body)}")
        if not 200 <= status < 300:
            raise AdminError("POST", self.url + "/__admin/scenarios", status, body)
        self._added[str(data.get("name"))] = token

    def remove_scenario(self, name: str) -> None:
        self._added.pop(name, None)
        path = "/__admin/scenarios/" + urllib.parse.quote(name, safe="")
        status, body = self._send("DELETE", path)
        if status == 404:
            raise KeyError(f"no scenario named {name!r}")
        if not 200 <= status < 300:
            raise AdminError("DELETE", self.url + path, status, body)

    def remove_added_scenarios(self) -> None:
        """Remove the scenarios this test added, unless another job has since replaced one
        (same name, another token): names are global on the server."""
        if not self._added:
            return
        added, self._added = self._added, {}
        rules = {r.get("name"): r for r in self._admin("GET", "/__admin/scenarios")["scenarios"]}
        for name, token in added.items():
            rule = rules.get(name)
            if rule is None or (rule.get("match") or {}).get("token") != token:
                continue
            path = "/__admin/scenarios/" + urllib.parse.quote(name, safe="")
            self._send("DELETE", path)  # 404: gone already

    def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        model: str | None = None,
        status: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """This token's journal entries, newest first (a request without a token, such as an
        output file's download, cannot be told apart from another job's: left out)."""
        query: dict[str, object] = {"limit": JOURNAL_LIMIT}
        for key, value in (("method", method), ("path", path), ("model", model)):
            if value is not None:
                query[key] = value
        if status is not None:
            query["status"] = status
        entries = self._admin("GET", "/__admin/requests", query=query)["requests"]
        mine = redact(self.token)
        return [e for e in entries if e.get("token") == mine][:limit]

    def predictions(self) -> list[dict[str, Any]]:
        """This token's predictions, newest first, as the admin API shows them (`owner`,
        `prediction`); the admin API lists the newest 1000 of all jobs."""
        return [p for p in super().predictions() if p.get("owner") == self.owner]


def _same(key: str, wanted: Any, running: Any) -> bool:
    if key == "time_scale" and isinstance(wanted, int | float) and running is not None:
        return float(wanted) == float(running)
    return bool(wanted == running)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
