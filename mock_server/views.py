"""JSON bodies for predictions, models and versions, exactly as the API shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mock_server.fixtures import ModelFixture
from mock_server.lifecycle import State, metrics
from mock_server.logs import logs_at
from mock_server.models import Prediction, Status

COG_VERSION = "0.16.9"


def timestamp(when: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds and `Z`, as the API's GET responses show."""
    if when is None:
        return None
    # isoformat is several times faster than strftime; the clock gives aware UTC (+00:00).
    return when.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def output_urls(p: Prediction, files_base: str) -> list[str]:
    return [f"{files_base}/delivery/{p.id}/out-{i}.{p.fmt}" for i in range(p.outputs)]


def prediction_json(
    p: Prediction,
    state: State,
    fixture: ModelFixture,
    *,
    base: str,
    prefix: str,
    files: list[str] | None = None,
) -> dict[str, Any]:
    """`files`: the output's items when not the HTTP file URLs (`data:` URIs, outputs.py)."""
    output: list[str] | str | None = None
    if state.status is Status.SUCCEEDED and not state.data_removed:
        urls = files if files is not None else output_urls(p, base)
        output = urls if fixture.output == "list" else urls[0]
    api = f"{base}{prefix}/predictions/{p.id}"
    return {
        "id": p.id,
        "model": p.model,
        "version": "hidden",
        "input": {} if state.data_removed else p.input,
        "logs": "" if state.data_removed else logs_at(p, state, fixture.log_style),
        "output": output,
        "data_removed": state.data_removed,
        "error": p.error if state.status is Status.FAILED else None,
        "status": state.status.value,
        "source": p.source,
        "created_at": timestamp(p.created_at),
        "started_at": timestamp(state.started_at),
        "completed_at": timestamp(state.completed_at),
        "urls": {
            "get": api,
            "cancel": f"{api}/cancel",
            "stream": f"{base}/stream/{p.id}",
            "web": f"{base}/p/{p.id}",
        },
        "metrics": metrics(p, state),
        **({"deadline": timestamp(p.deadline)} if p.deadline is not None else {}),
    }


def output_schema(fixture: ModelFixture) -> dict[str, Any]:
    uri = {"type": "string", "format": "uri"}
    if fixture.output == "list":
        return {"type": "array", "items": uri, "title": "Output"}
    return {**uri, "title": "Output"}


def version_json(fixture: ModelFixture, created_at: datetime) -> dict[str, Any]:
    return {
        "id": fixture.version,
        "created_at": timestamp(created_at),
        "cog_version": COG_VERSION,
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "paths": {},
            "components": {
                "schemas": {
                    "Input": {**fixture.input_schema, "title": "Input"},
                    "Output": output_schema(fixture),
                }
            },
        },
    }


def model_json(fixture: ModelFixture, created_at: datetime, run_count: int) -> dict[str, Any]:
    return {
        "url": f"https://replicate.com/{fixture.ref}",
        "owner": fixture.owner,
        "name": fixture.name,
        "description": fixture.description,
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": run_count,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": version_json(fixture, created_at),
        "is_official": True,
    }
