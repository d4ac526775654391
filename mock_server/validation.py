"""Request bodies: read within the size limit, parse JSON, and explain schema failures the way
Replicate does (its API speaks gojsonschema: `- input.x: Must be less than or equal to 4`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, ValidationError
from starlette.requests import Request

from mock_server.errors import (
    BadRequest,
    InvalidField,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

MAX_DEPTH = 64
JSON_WHITESPACE = b" \t\n\r"  # RFC 8259; bytes.strip() would also drop \x0b and \x0c
_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


async def read_json_object(
    request: Request, limit: int, *, optional: bool = False
) -> dict[str, Any]:
    """The body as a JSON object: 415, 413 (while streaming), or 400 for anything else.

    With `optional`, an empty body (nothing but JSON whitespace) reads as `{}`, whatever its
    Content-Type.
    """
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    json_type = not ctype or ctype == "application/json" or ctype.endswith("+json")
    if not json_type and not optional:
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip(JSON_WHITESPACE):
        if optional:
            return {}
        raise BadRequest("The request body is empty: send a JSON object with an `input` object.")
    if not json_type:
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(
            f"The request body must be a JSON object, not {_JSON_TYPES.get(type(body), 'value')}."
        )
    if too_deep(body, MAX_DEPTH):
        raise BadRequest(f"The request body is nested deeper than {MAX_DEPTH} levels.")
    return body


def too_deep(value: Any, budget: int) -> bool:
    """Whether arrays and objects nest more than `budget` levels (stored input is echoed back,
    and the JSON encoder refuses very deep values)."""
    if budget < 0:
        return True
    if isinstance(value, dict):
        return any(too_deep(v, budget - 1) for v in value.values())
    if isinstance(value, list):
        return any(too_deep(v, budget - 1) for v in value)
    return False


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _field(prefix: str, path: Iterable[Any]) -> str:
    parts = [prefix] if prefix else []
    parts.extend(str(p) for p in path)
    return ".".join(parts)


def describe(error: ValidationError, prefix: str) -> list[InvalidField]:
    """One or more InvalidField entries for a jsonschema error, in Replicate's wording."""
    where = _field(prefix, error.absolute_path)
    leaf = str(error.absolute_path[-1]) if error.absolute_path else (prefix or "(root)")
    kind = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if kind == "required":
        missing = [n for n in value if isinstance(instance, dict) and n not in instance]
        return [InvalidField("required", where, f"{n} is required") for n in missing]
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = schema.get("properties", {}) if isinstance(schema, dict) else {}
        extra = [k for k in instance if k not in known]
        return [
            InvalidField(
                "additional_property_not_allowed", where, f"Additional property {k} is not allowed"
            )
            for k in extra
        ]
    if kind == "enum":
        allowed = ", ".join(orjson.dumps(v).decode() for v in value)
        return [InvalidField("enum", where, f"{leaf} must be one of the following: {allowed}")]
    if kind == "type":
        expected = value if isinstance(value, str) else ", ".join(value)
        given = _JSON_TYPES.get(type(instance), "unknown")
        return [
            InvalidField(
                "invalid_type", where, f"Invalid type. Expected: {expected}, given: {given}"
            )
        ]
    messages = {
        "maximum": ("number_lte", "Must be less than or equal to {}"),
        "minimum": ("number_gte", "Must be greater than or equal to {}"),
        "exclusiveMaximum": ("number_lt", "Must be less than {}"),
        "exclusiveMinimum": ("number_gt", "Must be greater than {}"),
        "maxItems": ("array_max_items", "Array must have at most {} items"),
        "minItems": ("array_min_items", "Array must have at least {} items"),
        "maxLength": ("string_lte", "String length must be less than or equal to {}"),
        "minLength": ("string_gte", "String length must be greater than or equal to {}"),
        "uniqueItems": ("unique", "{} items must be unique"),
        "pattern": ("pattern", "Does not match pattern '{}'"),
        "format": ("format", "Does not match format '{}'"),
        "const": ("const", "Does not match: {}"),
    }
    if kind in messages:
        code, template = messages[kind]
        shown = leaf if kind == "uniqueItems" else _number(value) if kind != "const" else value
        return [InvalidField(code, where, template.format(shown))]
    return [InvalidField(str(kind), where, error.message)]


class SchemaValidator:
    """A schema compiled twice at start: jsonschema-rs answers valid-or-not in well under a
    microsecond; only when it says no does python-jsonschema list the problems in detail."""

    def __init__(
        self,
        schema: dict[str, Any],
        detailed: Draft202012Validator,
        registry: jsonschema_rs.Registry | None = None,
    ) -> None:
        self.schema = schema
        self.detailed = detailed
        self.fast = jsonschema_rs.validator_for(schema, registry=registry, validate_formats=True)

    @classmethod
    def plain(cls, schema: dict[str, Any]) -> SchemaValidator:
        detailed = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        return cls(schema, detailed)


def problems(validator: SchemaValidator, instance: Any, prefix: str) -> list[InvalidField]:
    """Every problem `instance` has against the schema; [] when it is valid."""
    if validator.fast.is_valid(instance):
        return []
    found = [p for e in validator.detailed.iter_errors(instance) for p in describe(e, prefix)]
    # The two engines agree but for corner cases; jsonschema-rs (the one that said no) decides.
    return found or [InvalidField("invalid", prefix, "Does not match its schema")]


def check(validator: SchemaValidator, instance: Any, prefix: str) -> None:
    """Raise ValidationFailed listing every problem (sorted, so the message is deterministic)."""
    raise_problems(problems(validator, instance, prefix))


def raise_problems(*groups: list[InvalidField]) -> None:
    """Raise one ValidationFailed (422) listing the problems of every group, sorted by field.

    A problem a group reports is left out when an earlier group reported the same field (for a
    missing or unknown property: the same property), so one mistake gives one line even when two
    schemas (the model's input schema, the spec's body schema) both find it.
    """
    kept: list[InvalidField] = []
    seen: set[tuple[str, str]] = set()
    for group in groups:
        keys = {_key(p) for p in group}
        kept.extend(p for p in dict.fromkeys(group) if _key(p) not in seen)
        seen |= keys
    if kept:
        raise ValidationFailed(sorted(kept, key=_order))


def _key(problem: InvalidField) -> tuple[str, str]:
    if problem.type in ("required", "additional_property_not_allowed"):
        return problem.field, problem.description  # the field is the parent: name the property
    return problem.field, ""


def _order(problem: InvalidField) -> tuple[list[tuple[int, int, str]], str, str]:
    """By field path (array indices in numeric order), then type, then description."""
    parts = problem.field.split(".") if problem.field else []
    path = [(0, int(x), "") if x.isascii() and x.isdigit() else (1, 0, x) for x in parts]
    return path, problem.type, problem.description
