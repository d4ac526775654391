"""The Redis store (`--store redis://HOST:PORT/DB`): everything several server processes must
share, behind the same interfaces as the in-memory default (store.py, uploads.py, journal.py,
webhooks/schedule.py), plus the control record that carries resets, the manual clock and
run-time scenarios between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mock_server.config import Settings
from mock_server.redis_store.agenda import RedisAgenda, RedisAttempts
from mock_server.redis_store.connection import Keys, connect
from mock_server.redis_store.control import SharedControl
from mock_server.redis_store.files import RedisFileStore
from mock_server.redis_store.journal import RedisJournal
from mock_server.redis_store.predictions import RedisStore


@dataclass
class RedisParts:
    client: Any
    store: RedisStore
    files: RedisFileStore
    journal: RedisJournal
    agenda: RedisAgenda
    attempts: RedisAttempts
    control: SharedControl

    async def close(self) -> None:
        await self.control.close()
        await self.journal.close()
        await self.client.aclose()


def open_redis(settings: Settings) -> RedisParts:
    """The parts for `settings.store`; nothing connects until the first command."""
    url = settings.store
    client = connect(url, settings.redis_timeout)
    keys = Keys()
    return RedisParts(
        client=client,
        store=RedisStore(client, url, settings.max_predictions, keys),
        files=RedisFileStore(client, url, keys),
        journal=RedisJournal(client, url, keys),
        agenda=RedisAgenda(client, url, keys),
        attempts=RedisAttempts(client, url, keys),
        control=SharedControl(client, url, keys),
    )
