"""The spec drives validation: each operation of openapi.yaml, compiled once at start into the
checks a request must pass (security, query parameters, headers, JSON body) before its handler."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mock_server.errors import BadRequest
from mock_server.spec import HTTP_METHODS, Spec
from mock_server.validation import SchemaValidator

# Headers the server handles itself: the security scheme and the body's media type.
_OWN_HEADERS = ("authorization", "content-type")
# Operations with this tag (the server's own admin API) refuse query parameters they do not
# declare, so a misspelt filter is not silently ignored. The public API ignores them, as the real
# API does.
STRICT_QUERY_TAG = "admin"


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool
    validator: SchemaValidator


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    path: str
    secured: bool
    query: dict[str, Parameter] = field(default_factory=dict)
    headers: dict[str, Parameter] = field(default_factory=dict)  # lower-case names
    body: SchemaValidator | None = None
    strict_query: bool = False  # refuse undeclared query parameters (else ignore them)

    def check_query(self, names: Iterable[str], values: Mapping[str, str]) -> None:
        """400 for a missing or bad query parameter, and with `strict_query` for one the spec
        does not list."""
        unknown = sorted(set(names) - self.query.keys()) if self.strict_query else []
        if unknown:
            raise BadRequest(f"Unknown query parameter: {', '.join(unknown)}.")
        _check(self.query, values, "query parameter")

    def check_headers(self, values: Mapping[str, str]) -> None:
        _check(self.headers, values, "header")


def _check(declared: dict[str, Parameter], given: Mapping[str, str], kind: str) -> None:
    for name, param in declared.items():
        value = given.get(name)
        if value is None:
            if param.required:
                raise BadRequest(f"Missing {kind} `{param.name}`.")
        elif not param.validator.fast.is_valid(value):
            raise BadRequest(f"Invalid {kind} `{param.name}`: {value[:100]!r}.")


def _operation(
    spec: Spec, path: str, method: str, op: dict[str, Any], shared: list[Any]
) -> Operation:
    params: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*shared, *op.get("parameters", [])]:
        p = spec.resolve(raw)
        params[(p["in"], p["name"])] = p

    def compiled(where: str) -> dict[str, Parameter]:
        return {
            name.lower() if where == "header" else name: Parameter(
                name, bool(p.get("required")), spec.schema_validator(p.get("schema", {}))
            )
            for (kind, name), p in params.items()
            if kind == where and name.lower() not in _OWN_HEADERS
        }

    body = None
    if "requestBody" in op:
        content = spec.resolve(op["requestBody"]).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        body = spec.schema_validator(schema) if schema is not None else None
    security = op.get("security", spec.document.get("security", []))
    return Operation(
        id=op["operationId"],
        method=method.upper(),
        path=path,
        secured=bool(security),
        query=compiled("query"),
        headers=compiled("header"),
        body=body,
        strict_query=STRICT_QUERY_TAG in op.get("tags", []),
    )


def build_operations(spec: Spec) -> dict[str, Operation]:
    """Every operation of the spec, keyed by operationId."""
    return {
        op["operationId"]: _operation(spec, path, method, op, item.get("parameters", []))
        for path, item in spec.document.get("paths", {}).items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
