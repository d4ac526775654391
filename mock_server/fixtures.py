"""Model fixtures: loaded once at start into typed objects; a bad file stops the server."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from mock_server.logs import LogStyle
from mock_server.sizes import RATIO_PATTERN, CustomSize, SizeRule, parse_ratio
from mock_server.spec import YAML_LOADER
from mock_server.validation import SchemaValidator

_SIDE = {"type": "integer", "minimum": 1, "maximum": 16384}
_PAIR = {"type": "array", "items": _SIDE, "minItems": 2, "maxItems": 2}
_RATIO = {"type": "string", "pattern": RATIO_PATTERN}  # "W:H", quoted (YAML reads 3:7 as 187)
FIXTURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["owner", "name", "output", "size", "timing", "logs", "input_schema"],
    "properties": {
        "owner": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$"},
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$"},
        "description": {"type": "string"},
        "version": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "output": {"enum": ["list", "single"]},
        "size": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "aspect_field": {"type": "string"},
                "table": {"type": "object", "additionalProperties": _PAIR},
                "halve_field": {"type": "string"},
                "megapixels": {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
                "resolution_field": {"type": "string"},
                "multiple": {"type": "integer", "minimum": 1},
                "min_side": _SIDE,
                "max_side": _SIDE,
                "match_input_field": {"type": "string"},
                "max_megapixels": {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
                "min_ratio": _RATIO,
                "max_ratio": _RATIO,
                "input_size_field": {"type": "string"},
                "input_size_max": _SIDE,
                "custom": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["multiple", "min", "max", "default"],
                    "properties": {
                        "multiple": {"type": "integer", "minimum": 1},
                        "min": _SIDE,
                        "max": _SIDE,
                        "default": _PAIR,
                    },
                },
            },
        },
        "timing": {
            "type": "object",
            "additionalProperties": False,
            "required": ["setup", "predict"],
            "properties": {
                "setup": {"type": "number", "minimum": 0},
                "predict": {"type": "number", "minimum": 0},
            },
        },
        "logs": {
            "type": "object",
            "additionalProperties": False,
            "required": ["style"],
            "properties": {
                "style": {"enum": ["cog-flux", "bfl"]},
                "steps_field": {"type": "string"},
                "steps_default": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
        },
        "input_schema": {
            "type": "object",
            "required": ["type", "properties"],
            "properties": {
                "type": {"const": "object"},
                "properties": {"type": "object", "required": ["prompt"]},
            },
        },
    },
}
_FIXTURE_VALIDATOR = Draft202012Validator(FIXTURE_SCHEMA)


class FixtureError(Exception):
    """A fixture file is unusable; the message names the file and the field."""

    def __init__(self, path: Path, field: str, message: str) -> None:
        self.path, self.field = path, field
        super().__init__(f"{path}: {field or '(file)'}: {message}")


@dataclass(frozen=True)
class ModelFixture:
    owner: str
    name: str
    description: str
    version: str
    output: str  # "list" | "single"
    size: SizeRule
    setup_s: float
    predict_s: float
    log_style: LogStyle
    input_schema: dict[str, Any]
    validator: SchemaValidator = field(repr=False, compare=False)
    defaults: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @cached_property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}"

    @cached_property
    def uri_inputs(self) -> tuple[tuple[str, bool], ...]:
        """The inputs the schema types as URIs (image inputs): (name, whether a list of them)."""
        found = []
        for name, prop in self.input_schema.get("properties", {}).items():
            if not isinstance(prop, dict):
                continue
            items = prop.get("items")
            if prop.get("format") == "uri":
                found.append((name, False))
            elif isinstance(items, dict) and items.get("format") == "uri":
                found.append((name, True))
        return tuple(found)

    def effective_input(self, inp: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **inp}


def _field_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _size_ratio(path: Path, size: dict[str, Any], key: str) -> float | None:
    """Pops `size[key]` ("W:H", already matched by the schema) as width / height."""
    if key not in size:
        return None
    ratio = parse_ratio(size.pop(key))
    if ratio is None:
        raise FixtureError(path, f"size.{key}", "both sides of W:H must be above 0")
    return ratio


def load_model(path: Path) -> ModelFixture:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FixtureError(path, "", f"cannot read YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FixtureError(path, "", "a model fixture must be a mapping")
    error = next(iter(sorted(_FIXTURE_VALIDATOR.iter_errors(data), key=lambda e: e.path)), None)
    if error is not None:
        raise FixtureError(path, _field_path(error.absolute_path), error.message)
    if data["owner"] != path.parent.name or data["name"] != path.stem:
        raise FixtureError(path, "owner/name", "must match the file's folder and name")
    schema = data["input_schema"]
    try:
        if not jsonschema_rs.meta.is_valid(schema):  # fast; python-jsonschema names the problem
            Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise FixtureError(
            path, _field_path(["input_schema", *exc.absolute_path]), exc.message
        ) from None
    validator = SchemaValidator.plain(schema)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    for key, value in defaults.items():
        problem = next(
            validator.detailed.evolve(schema=schema["properties"][key]).iter_errors(value), None
        )
        if problem is not None:
            raise FixtureError(path, f"input_schema.properties.{key}.default", problem.message)
    ref = f"{data['owner']}/{data['name']}"
    size = dict(data["size"])
    custom = size.pop("custom", None)
    table = size.pop("table", None)
    min_ratio = _size_ratio(path, size, "min_ratio")
    max_ratio = _size_ratio(path, size, "max_ratio")
    if min_ratio and max_ratio and min_ratio > max_ratio:
        raise FixtureError(path, "size.min_ratio", "must not be wider than size.max_ratio")
    logs = data["logs"]
    return ModelFixture(
        owner=data["owner"],
        name=data["name"],
        description=data.get("description", ""),
        version=data.get("version") or hashlib.sha256(ref.encode()).hexdigest(),
        output=data["output"],
        size=SizeRule(
            **size,
            min_ratio=min_ratio,
            max_ratio=max_ratio,
            table={k: (v[0], v[1]) for k, v in table.items()} if table else None,
            custom=CustomSize(
                custom["multiple"], custom["min"], custom["max"], tuple(custom["default"])
            )
            if custom
            else None,
        ),
        setup_s=float(data["timing"]["setup"]),
        predict_s=float(data["timing"]["predict"]),
        log_style=LogStyle(logs["style"], logs.get("steps_field"), logs.get("steps_default", 20)),
        input_schema=schema,
        validator=validator,
        defaults=defaults,
    )


def load_fixtures(directory: Path) -> dict[str, ModelFixture]:
    """Every `models/<owner>/<name>.yaml` under `directory`, keyed by "owner/name"."""
    models_dir = directory / "models"
    if not models_dir.is_dir():
        raise FixtureError(models_dir, "", "fixtures folder has no models/ directory")
    models: dict[str, ModelFixture] = {}
    for path in sorted(models_dir.glob("*/*.yaml")):
        fixture = load_model(path)
        models[fixture.ref] = fixture
    if not models:
        raise FixtureError(models_dir, "", "no model files (models/<owner>/<name>.yaml)")
    return models
