"""The contract, `openapi.yaml`: loaded once, served as is, and used to validate request bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mock_server.validation import SchemaValidator

SPEC_URI = "urn:mock-server:openapi"
# libyaml's loader when PyYAML has it (about ten times faster), else the pure-Python one.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class SpecError(Exception):
    """openapi.yaml cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Spec:
    document: dict[str, Any]
    yaml_bytes: bytes
    json_bytes: bytes = field(repr=False)
    _registry: Registry[Any] = field(repr=False)
    _rs_registry: jsonschema_rs.Registry = field(repr=False)

    def schema_validator(self, schema: dict[str, Any]) -> SchemaValidator:
        """`schema` compiled once; its `$ref`s resolve inside this document."""
        schema = _absolute_refs(schema)
        detailed = Draft202012Validator(
            schema, registry=self._registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        return SchemaValidator(schema, detailed, self._rs_registry)

    def validator(self, component: str) -> SchemaValidator:
        """A compiled validator for `components/schemas/<component>`."""
        if component not in self.document.get("components", {}).get("schemas", {}):
            raise SpecError(f"openapi.yaml: components.schemas.{component} is missing")
        return self.schema_validator({"$ref": f"{SPEC_URI}#/components/schemas/{component}"})

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow local `$ref`s (`#/components/...`) to the object they name."""
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def operation_ids(self) -> set[str]:
        return {
            op["operationId"]
            for item in self.document.get("paths", {}).values()
            for method, op in item.items()
            if method in HTTP_METHODS and "operationId" in op
        }


def _absolute_refs(node: Any) -> Any:
    """A copy of `node` whose local refs (`#/...`) point into the document, wherever it sits."""
    if isinstance(node, dict):
        return {
            k: (
                SPEC_URI + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _absolute_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


def load_spec(path: Path) -> Spec:
    try:
        raw = path.read_bytes()
        document = yaml.load(raw, Loader=YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict) or "paths" not in document:
        raise SpecError(f"{path}: not an OpenAPI document (no `paths`)")
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    rs_registry = jsonschema_rs.Registry([(SPEC_URI, document)])
    return Spec(document, raw, orjson.dumps(document), registry, rs_registry)
