"""Records as Redis keeps them: JSON (orjson), datetimes as ISO 8601 (exact to the microsecond).

A prediction is two JSON documents in one hash: `d`, what never changes after the create, and
`m`, what a cancel, a forced end or a read on the polls clock changes (`save` writes only `m`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from mock_server.journal import Entry
from mock_server.models import Prediction, Status
from mock_server.uploads import StoredFile
from mock_server.webhooks.delivery import Attempt
from mock_server.webhooks.schedule import Sent, Track

MUTABLE = ("canceled_at", "deadline", "ends_at", "outcome", "error", "reads")
_TIMES = ("created_at", "canceled_at", "deadline", "ends_at")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def prediction_parts(p: Prediction) -> tuple[bytes, bytes]:
    """(`d`, `m`) for a new record."""
    fixed = {
        "id": p.id,
        "owner": p.owner,
        "model": p.model,
        "input": p.input,
        "created_at": _iso(p.created_at),
        "setup_s": p.setup_s,
        "predict_s": p.predict_s,
        "width": p.width,
        "height": p.height,
        "fmt": p.fmt,
        "quality": p.quality,
        "outputs": p.outputs,
        "source": p.source,
        "webhook": p.webhook,
        "webhook_events_filter": list(p.webhook_events_filter),
        "webhook_fail": p.webhook_fail,
    }
    return orjson.dumps(fixed), mutable_part(p)


def mutable_part(p: Prediction) -> bytes:
    return orjson.dumps(
        {
            "canceled_at": _iso(p.canceled_at),
            "deadline": _iso(p.deadline),
            "ends_at": _iso(p.ends_at),
            "outcome": p.outcome.value,
            "error": p.error,
            "reads": p.reads,
        }
    )


def prediction_from(fixed: bytes, mutable: bytes, seq: bytes | int) -> Prediction:
    d: dict[str, Any] = orjson.loads(fixed)
    m: dict[str, Any] = orjson.loads(mutable)
    return Prediction(
        id=d["id"],
        owner=d["owner"],
        model=d["model"],
        input=d["input"],
        created_at=datetime.fromisoformat(d["created_at"]),
        setup_s=d["setup_s"],
        predict_s=d["predict_s"],
        width=d["width"],
        height=d["height"],
        fmt=d["fmt"],
        quality=d["quality"],
        outputs=d["outputs"],
        seq=int(seq),
        canceled_at=_dt(m["canceled_at"]),
        deadline=_dt(m["deadline"]),
        ends_at=_dt(m["ends_at"]),
        outcome=Status(m["outcome"]),
        error=m["error"],
        reads=m["reads"],
        source=d["source"],
        webhook=d["webhook"],
        webhook_events_filter=tuple(d["webhook_events_filter"]),
        webhook_fail=d["webhook_fail"],
    )


def file_meta(f: StoredFile) -> bytes:
    return orjson.dumps(
        {
            "id": f.id,
            "owner": f.owner,
            "name": f.name,
            "content_type": f.content_type,
            "metadata": f.metadata,
            "created_at": _iso(f.created_at),
            "sha256": f.sha256,
            "md5": f.md5,
            "seq": f.seq,
        }
    )


def file_from(meta: bytes, data: bytes) -> StoredFile:
    m: dict[str, Any] = orjson.loads(meta)
    return StoredFile(
        id=m["id"],
        owner=m["owner"],
        name=m["name"],
        content_type=m["content_type"],
        data=data,
        metadata=m["metadata"],
        created_at=datetime.fromisoformat(m["created_at"]),
        sha256=m["sha256"],
        md5=m["md5"],
        seq=m["seq"],
    )


def _text(raw: bytes | None) -> str | None:
    return raw.decode("latin-1") if raw is not None else None


def _raw(text: str | None) -> bytes | None:
    return text.encode("latin-1") if text is not None else None


def entry_json(e: Entry) -> bytes:
    return orjson.dumps(
        [
            e.seq,
            _iso(e.at),
            e.method,
            e.path,
            _text(e.query),
            e.status,
            _text(e.authorization),
            _text(e.scenario),
            e.duration_ms,
            _text(e.request_body),
            _text(e.response_body),
            e.content_type,
        ]
    )


def entry_from(raw: bytes) -> Entry:
    v = orjson.loads(raw)
    return Entry(
        v[0],
        datetime.fromisoformat(v[1]),
        v[2],
        v[3],
        _raw(v[4]) or b"",
        v[5],
        _raw(v[6]) or b"",
        _raw(v[7]),
        v[8],
        _raw(v[9]) or b"",
        _raw(v[10]) or b"",
        v[11],
    )


def track_json(t: Track) -> bytes:
    return orjson.dumps(
        {
            "prediction_id": t.prediction_id,
            "owner": t.owner,
            "url": t.url,
            "events": list(t.events),
            "base": t.base,
            "prefix": t.prefix,
            "secret": t.secret,
            "fails_left": t.fails_left,
            "sent": sorted(t.sent.events),
            "logs_at": _iso(t.sent.logs_at),
            "logs": t.sent.logs,
        }
    )


def track_from(raw: bytes) -> Track:
    v: dict[str, Any] = orjson.loads(raw)
    return Track(
        v["prediction_id"],
        v["owner"],
        v["url"],
        tuple(v["events"]),
        v["base"],
        v["prefix"],
        v["secret"],
        v["fails_left"],
        Sent(set(v["sent"]), _dt(v["logs_at"]), v["logs"]),
    )


def attempt_json(a: Attempt) -> bytes:
    return orjson.dumps(
        [
            _iso(a.at),
            a.prediction_id,
            a.event,
            a.url,
            a.attempt,
            a.status,
            a.latency_ms,
            a.error,
            a.webhook_id,
            a.owner,
        ]
    )


def attempt_from(raw: bytes) -> Attempt:
    v = orjson.loads(raw)
    return Attempt(datetime.fromisoformat(v[0]), *v[1:])
