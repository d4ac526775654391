"""Scenarios: rules that match requests and force what happens (a failure, a cancel, slow or
instant timing, an HTTP error for the next N requests, added latency).

A request is matched by the header `X-Mock-Scenario: <name>` (any scenario, built-in or not),
or by a rule's `match` (model, prompt pattern, token, route, method). Rules load from the
`--scenarios` file (`examples/scenarios.yaml` is one) and change at run time through
`/__admin/scenarios`; a default server has only the built-ins, which a header selects.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mock_server.auth import owner_of
from mock_server.errors import ForcedError
from mock_server.models import Prediction, Status
from mock_server.spec import YAML_LOADER
from mock_server.validation import SchemaValidator

NSFW_MESSAGE = (
    "All generated images contained NSFW content. Try running it again with a different prompt."
)
HEADER = "x-mock-scenario"


@dataclass
class Scenario:
    name: str
    description: str = ""
    match: dict[str, str] = field(default_factory=dict)
    outcome: dict[str, str] | None = None
    timing: dict[str, float] | None = None
    http: dict[str, Any] | None = None
    latency_ms: float = 0.0
    webhook_fail: int | None = None  # delivery attempts of a created prediction that fail unsent
    times: int | None = None  # how many more requests it applies to; None: every one
    builtin: bool = False
    _prompt: re.Pattern[str] | None = field(default=None, repr=False)
    _model: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, builtin: bool = False) -> Scenario:
        """Build from a validated mapping (see SCENARIO_SCHEMA)."""
        match = dict(data.get("match") or {})
        prompt = re.compile(match["prompt"]) if "prompt" in match else None
        model = re.compile(fnmatch.translate(match["model"])) if "model" in match else None
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            match=match,
            outcome=data.get("outcome"),
            timing=data.get("timing"),
            http=data.get("http"),
            latency_ms=float(data.get("latency_ms", 0)),
            webhook_fail=data.get("webhook_fail"),
            times=data.get("times"),
            builtin=builtin,
            _prompt=prompt,
            _model=model,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        data["match"] = self.match
        for key in ("outcome", "timing", "http", "webhook_fail"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        data["latency_ms"] = self.latency_ms
        data["times"] = self.times
        data["builtin"] = self.builtin
        return data

    def matches(self, req: RequestFacts) -> bool:
        """Whether this rule's `match` selects the request (a rule without `match` never does:
        it applies through the header only)."""
        m = self.match
        if not m:
            return False
        if self._model is not None and not (req.model and self._model.match(req.model)):
            return False
        if self._prompt is not None and not (req.prompt and self._prompt.search(req.prompt)):
            return False
        if "token" in m and m["token"] != req.token:
            return False
        if "route" in m and m["route"] != req.route:
            return False
        return not ("method" in m and m["method"].upper() != req.method)


@dataclass(slots=True)
class RequestFacts:
    method: str
    route: str  # operationId without the `v1_` prefix
    token: str | None
    model: str | None = None
    prompt: str | None = None
    header: str | None = None  # X-Mock-Scenario


BUILTINS: list[dict[str, Any]] = [
    {
        "name": "fail",
        "description": "The prediction fails with a model error.",
        "outcome": {"status": "failed", "error": "Prediction failed: a mock model error"},
    },
    {
        "name": "nsfw",
        "description": "The prediction fails the way the safety checker fails it.",
        "outcome": {"status": "failed", "error": NSFW_MESSAGE},
    },
    {
        "name": "cancel",
        "description": "The prediction ends canceled.",
        "outcome": {"status": "canceled"},
    },
    {"name": "slow", "description": "Ten times the model's timing.", "timing": {"scale": 10}},
    {
        "name": "instant",
        "description": "No set-up, no run time: succeeded on the next read.",
        "timing": {"setup": 0, "predict": 0},
    },
    {
        "name": "rate-limit",
        "description": "429 with Retry-After, as Replicate throttles.",
        "http": {
            "status": 429,
            "body": {
                "title": "Too Many Requests",
                "detail": "Request was throttled. Expected available in 1 second.",
                "status": 429,
            },
            "headers": {"Retry-After": "1"},
        },
    },
    {
        "name": "server-error",
        "description": "500 Internal Server Error.",
        "http": {
            "status": 500,
            "body": {
                "title": "Internal Server Error",
                "detail": "A mock server error.",
                "status": 500,
            },
        },
    },
    {
        "name": "unavailable",
        "description": "503 Service Unavailable with Retry-After.",
        "http": {
            "status": 503,
            "body": {"title": "Service Unavailable", "detail": "A mock outage.", "status": 503},
            "headers": {"Retry-After": "1"},
        },
    },
    {"name": "latency", "description": "Adds one second before answering.", "latency_ms": 1000},
]


class ScenarioError(Exception):
    """A scenario definition is unusable; the message names the field."""


def parse(data: Any, schema: SchemaValidator, where: str = "scenario") -> Scenario:
    """A scenario from a mapping checked against the spec's `ScenarioRequest` schema."""
    # A wrong value inside `allOf` also fails `unevaluatedProperties` at the root, naming every
    # key: report the field itself first.
    errors = sorted(
        schema.detailed.iter_errors(data),
        key=lambda e: (e.validator == "unevaluatedProperties", [str(p) for p in e.absolute_path]),
    )
    error = next(iter(errors), None)
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        raise ScenarioError(f"{where}: {path}: {error.message}")
    if "prompt" in (data.get("match") or {}):
        try:
            re.compile(data["match"]["prompt"])
        except re.error as exc:
            raise ScenarioError(f"{where}: match.prompt: not a regular expression: {exc}") from None
    return Scenario.from_dict(data)


def load_file(path: Path, schema: SchemaValidator) -> list[Scenario]:
    """A scenarios file: a mapping with a `scenarios` list."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read YAML: {exc}") from None
    items = data.get("scenarios", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ScenarioError(f"{path}: scenarios: must be a list")
    return [parse(item, schema, f"{path}: scenarios[{i}]") for i, item in enumerate(items)]


class ScenarioBook:
    """The built-ins, the file's rules and the ones added at run time."""

    def __init__(self, from_file: list[Scenario], schema: SchemaValidator) -> None:
        self._from_file = from_file
        self.schema = schema  # the spec's ScenarioRequest, for scenarios added at run time
        self.reset()

    def reset(self) -> None:
        self.rules: dict[str, Scenario] = {}
        self._added: set[str] = set()  # names added at run time
        for data in BUILTINS:
            self.rules[data["name"]] = Scenario.from_dict(data, builtin=True)
        for rule in self._from_file:
            self.rules[rule.name] = Scenario.from_dict(rule.to_json() | {"builtin": False})
        self._changed()

    def add(self, scenario: Scenario) -> None:
        self.rules[scenario.name] = scenario
        self._added.add(scenario.name)
        self._changed()

    def remove(self, name: str) -> bool:
        removed = self.rules.pop(name, None) is not None
        self._added.discard(name)
        self._changed()
        return removed

    def refresh(self) -> None:
        """After changing rules' `times` directly: try only those with some left."""
        self._changed()

    def _changed(self) -> None:
        # Rules with `match` are tried on every request: keep just those, still in order.
        self._matching = [
            r for r in self.rules.values() if r.match and (r.times is None or r.times > 0)
        ]

    def active(self, header: str | None) -> bool:
        """Whether any scenario could apply (cheap: most requests have none)."""
        return header is not None or bool(self._matching)

    def select(self, req: RequestFacts) -> list[Scenario]:
        """The scenarios that match this request (those with `times` still to be spent: see
        `spend`)."""
        chosen = [r for r in self._matching if r.matches(req)]
        if req.header:
            named = self.rules.get(req.header)
            if named is not None and named not in chosen:
                chosen.append(named)
        return chosen

    def spend(self, rule: Scenario) -> bool:
        """Spend one of a rule's `times`; False when none is left."""
        if rule.times is None:
            return True
        if rule.times <= 0:
            return False
        rule.times -= 1
        if rule.times == 0 and rule in self._matching:
            self._changed()  # spent: no longer tried
        return True

    def owned_by(self, owner: str) -> list[str]:
        """The run-time rules that match one caller's token (a per-token reset removes them)."""
        return [
            r.name
            for r in self.rules.values()
            if r.name in self._added and "token" in r.match and owner_of(r.match["token"]) == owner
        ]

    def unknown(self, header: str | None) -> bool:
        return header is not None and header not in self.rules


def outcome_status(rule: Scenario) -> Status | None:
    if rule.outcome is None:
        return None
    return Status(rule.outcome["status"])


async def apply_http(rules: list[Scenario]) -> None:
    """Added latency (real time, without blocking other requests), then a forced HTTP error."""
    latency = sum(r.latency_ms for r in rules)
    if latency:
        await asyncio.sleep(latency / 1000)
    for rule in rules:
        if rule.http is not None:
            body = rule.http.get("body") or {"status": rule.http["status"]}
            raise ForcedError(rule.http["status"], body, dict(rule.http.get("headers") or {}))


def apply_to_prediction(rules: Sequence[Scenario], p: Prediction, scale: float) -> None:
    """A forced outcome (failed with a message, canceled), timing and failing webhook
    deliveries, on a new prediction."""
    for rule in rules:
        if rule.webhook_fail is not None:
            p.webhook_fail = rule.webhook_fail
        if rule.timing is not None:
            t = rule.timing
            if "setup" in t:
                p.setup_s = t["setup"] * scale
            if "predict" in t:
                p.predict_s = t["predict"] * scale
            if "scale" in t:
                p.setup_s *= t["scale"]
                p.predict_s *= t["scale"]
        status = outcome_status(rule)
        if status is not None:
            p.outcome = status
            if status is Status.FAILED:
                p.error = (rule.outcome or {}).get("error", "Prediction failed")
