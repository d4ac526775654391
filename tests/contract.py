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
import httpx2
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mock_server.config import Settings

URI = "urn:tests:openapi"
RESPONSES = "/components/responses"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
Response = httpx.Response | httpx2.Response
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

    def _at(self, pointer: str) -> Any:
        node: Any = self.doc
        for part in pointer[1:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _resolve(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow local `$ref`s; returns the node and its JSON pointer in the document."""
        while isinstance(node, dict) and "$ref" in node:
            assert node["$ref"].startswith("#/"), f"not a local $ref: {node['$ref']}"
            pointer = node["$ref"][1:]
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

        `path` is the raw request path (no query). The response passes if it is documented for
        `path` or for `decoded_path`, its percent-decoded form (the server routes on that, so a
        `%2F`-encoded model ref fills `{model_owner}/{model_name}`).
        """
        headers = {k.lower(): v for k, v in headers.items()}
        errors = []
        for candidate in dict.fromkeys(p for p in (path, decoded_path) if p is not None):
            try:
                return self._check(method.lower(), candidate, status, headers, body)
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError("\n".join(errors))

    def _check(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        where = f"{method.upper()} {path} -> {status}"
        if method == "head":
            assert body == b"", f"{where}: a HEAD response has a body"
        matched = [t for regex, t in self._paths if regex.match(path)]
        op_pointer = next(
            (
                f"/paths/{_escape(t)}/{m}"
                for t in matched
                for m in (method, "get" if method == "head" else method)
                if m in self.doc["paths"][t]
            ),
            None,
        )
        allowed: set[str] = set()
        if op_pointer is not None:
            op = self._at(op_pointer)
            responses = op.get("responses", {})
            keys = (str(status), f"{status // 100}XX", "default")
            key = next((k for k in keys if k in responses), None)
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
            response, pointer = self._resolve({"$ref": f"#{RESPONSES}/MethodNotAllowed"}, "")
            allowed = {m.upper() for t in matched for m in self.doc["paths"][t] if m in METHODS}
        else:
            assert status == 404, f"{where}: no path in the spec matches, so 404 is due"
            response, pointer = self._resolve({"$ref": f"#{RESPONSES}/NotFound"}, "")
        self._check_response(where, response, pointer, status, headers, body, method == "head")
        allow = {m.strip().upper() for m in headers.get("allow", "").split(",")}
        assert allowed <= allow, f"{where}: Allow {headers.get('allow')!r} lacks {sorted(allowed)}"

    def _check_response(
        self, where: str, response: dict[str, Any], pointer: str, status: int,
        headers: Mapping[str, str], body: bytes, head: bool,
    ) -> None:  # fmt: skip
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
            (m for m in (mtype, mtype.split("/")[0] + "/*", "*/*") if mtype and m in content),
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
            raise AssertionError(f"{where}: body is not JSON ({exc}): {body[:200]!r}") from None
        validator = self._validator(f"{pointer}/content/{_escape(documented)}/schema")
        errors = sorted(validator.iter_errors(data), key=lambda e: e.json_path)
        assert not errors, f"{where}: body does not match {pointer}:\n" + "\n".join(
            f"  {e.json_path}: {e.message}" for e in errors[:10]
        )
        if mtype == "application/problem+json" and isinstance(data, dict):
            assert data.get("status") == status, f"{where}: problem status {data.get('status')}"


@cache
def default_checker() -> ResponseChecker:
    return ResponseChecker(Settings().spec_path)


def httpx_hook(checker: ResponseChecker | None = None) -> Callable[[Response], None]:
    """An `event_hooks["response"]` entry that checks each response against the spec.

    For httpx clients and starlette's TestClient (an httpx2 client); a failed check raises
    AssertionError from the request call, so it fails the test that made the request."""

    def hook(response: Response) -> None:
        mtype = media_type(response.headers.get("content-type"))
        # An event stream from a live server may never end: its media type is all that is checked.
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
