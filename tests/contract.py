"""Test-only contract check: every response the app sends must be documented in openapi.yaml.

`ResponseChecker.check` raises AssertionError when the status, media type, required headers or
JSON body of a response are not what the spec documents for the request's operation. `httpx_hook`
wraps it as an httpx response event hook, so any httpx client (TestClient included) checks
every response it receives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mock_server.config import Settings

URI = "urn:tests:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_JSON = re.compile(r"^application/(.+\+)?json$")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


class ResponseChecker:
    """Built once from openapi.yaml; `check` is called once per response."""

    def __init__(self, spec_path: Path) -> None:
        self.doc: dict[str, Any] = yaml.safe_load(spec_path.read_text())
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        # Concrete paths first: OpenAPI prefers `/a/b` over `/a/{x}` when both match.
        templates = sorted(self.doc["paths"], key=lambda t: (t.count("{"), t))
        self._paths = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in templates
        ]

    def _resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow local `$ref`s; returns the node and its JSON pointer in the document."""
        while isinstance(node, dict) and "$ref" in node:
            ref: str = node["$ref"]
            assert ref.startswith("#/"), f"only local $refs are supported: {ref}"
            pointer = ref[1:]
            node = self._at(pointer)
        return node, pointer

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": f"{URI}#{pointer}"},
                registry=self._registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
        return self._validators[pointer]

    def templates(self, *paths: str) -> list[str]:
        """The spec's path templates that match any of `paths`, most concrete first."""
        return [t for regex, t in self._paths if any(regex.match(p) for p in paths)]

    def check(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        decoded_path: str | None = None,
    ) -> None:
        """Raise AssertionError unless the response is documented for `method path`.

        `path` is the raw request path (no query); `decoded_path` its percent-decoded form, so a
        `%2F`-encoded model ref matches `{model_owner}/{model_name}`.
        """
        method = method.lower()
        where = f"{method.upper()} {path} -> {status}"
        headers = {k.lower(): v for k, v in headers.items()}
        if method == "head":
            assert body == b"", f"{where}: a HEAD response has a body"
        as_get = "get" if method == "head" else method
        paths = [path] if decoded_path in (None, path) else [path, decoded_path or path]
        matched = self.templates(*paths)
        op_pointer = next(
            (
                f"/paths/{_escape(t)}/{m}"
                for t in matched
                for m in (method, as_get)
                if m in self.doc["paths"][t]
            ),
            None,
        )
        if op_pointer is not None:
            op = self._resolve(self._at(op_pointer), op_pointer)[0]
            responses = op.get("responses", {})
            key = next(
                (k for k in (str(status), f"{status // 100}XX", "default") if k in responses),
                None,
            )
            assert key is not None, (
                f"{where}: undocumented status {status} for {op.get('operationId', op_pointer)} "
                f"(documented: {', '.join(responses)})"
            )
            pointer = f"{op_pointer}/responses/{_escape(key)}"
            response, pointer = self._resolve(responses[key], pointer)
        elif matched:
            assert status == 405, (
                f"{where}: {method.upper()} is not documented for {matched[0]}, "
                f"so the response must be 405, not {status}"
            )
            response, pointer = self._resolve(
                {"$ref": "#/components/responses/MethodNotAllowed"}, ""
            )
            documented = {m.upper() for t in matched for m in self.doc["paths"][t] if m in METHODS}
            allow = {m.strip().upper() for m in headers.get("allow", "").split(",")}
            assert documented <= allow, (
                f"{where}: Allow {headers.get('allow')!r} lacks documented {sorted(documented)}"
            )
        else:
            assert status == 404, f"{where}: no path in the spec matches, so 404 is due"
            response, pointer = self._resolve({"$ref": "#/components/responses/NotFound"}, "")
        self._check_response(where, response, pointer, status, headers, body, method == "head")

    def _at(self, pointer: str) -> Any:
        node: Any = self.doc
        for part in pointer[1:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _check_response(
        self,
        where: str,
        response: dict[str, Any],
        pointer: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        head: bool,
    ) -> None:
        for name, header in response.get("headers", {}).items():
            header = self._resolve(header, "")[0]
            if header.get("required"):
                assert name.lower() in headers, f"{where}: required header {name} is missing"
        content: dict[str, Any] = response.get("content", {})
        mtype = media_type(headers.get("content-type"))
        if not content:
            assert head or body == b"", f"{where}: a body where the spec documents none"
            return
        documented = next(
            (
                m
                for m in (mtype, mtype.split("/")[0] + "/*", "*/*")
                if mtype and m in content
            ),
            None,
        )
        assert documented is not None, (
            f"{where}: content type {mtype or '(none)'!r} is not documented "
            f"(documented: {', '.join(content)})"
        )
        if head or not _JSON.match(mtype) or "schema" not in content[documented]:
            return  # binary, image, yaml, html, event-stream: the media type is the contract
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"{where}: body is not valid JSON ({exc}): {body[:200]!r}") from None
        validator = self._validator(f"{pointer}/content/{_escape(documented)}/schema")
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: body does not match {pointer}:\n" + "\n".join(
            f"  {e.json_path}: {e.message}" for e in errors[:10]
        )
        if mtype == "application/problem+json" and isinstance(data, dict):
            assert data.get("status") == status, f"{where}: problem status {data.get('status')}"


@cache
def default_checker() -> ResponseChecker:
    return ResponseChecker(Settings().spec_path)


def httpx_hook(checker: ResponseChecker | None = None) -> Callable[[httpx.Response], None]:
    """An httpx `event_hooks["response"]` entry that checks each response against the spec."""

    def hook(response: httpx.Response) -> None:
        mtype = media_type(response.headers.get("content-type"))
        # An event stream may never end: read the body only when something will look at it.
        body = b"" if mtype == "text/event-stream" else response.read()
        url = response.request.url
        (checker or default_checker()).check(
            response.request.method,
            url.raw_path.split(b"?")[0].decode("ascii"),
            response.status_code,
            response.headers,
            body,
            decoded_path=url.path,
        )

    return hook
