"""Uploaded files (the Files API) behind one interface; the in-memory store is the default.

No HTTP and no clock here: the store keeps each token's files, counts identical uploads (for
stable ids) and pages through a caller's files, newest first. Expiry is the caller's decision
(`purge` with the time now).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from mock_server.paging import slice_page

LIFETIME = timedelta(hours=24)  # Replicate: expires_at = created_at + 24 h
ID_LENGTH = 26


def files_space(owner: str, prefix: str) -> str:
    """The key a token's files are kept under: one space per API prefix, as CometAPI
    (`/replicate/v1`) and Replicate (`/v1`) are separate services. (It also keeps schemathesis's
    stateful checks sound: a file deleted through one prefix would still be "the same resource"
    under the other, which its resource-availability check cannot know.)"""
    return f"{owner}{prefix}"


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    owner: str  # files_space(token hash, prefix): each token sees only its own files
    name: str
    content_type: str
    data: bytes
    metadata: Any  # any JSON value; the clients send an object
    created_at: datetime
    sha256: str
    md5: str
    seq: int = 0  # upload order, assigned by the store

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def expires_at(self) -> datetime:
        return self.created_at + LIFETIME


def digests(data: bytes) -> tuple[str, str]:
    """(sha256, md5) of the content, as hex; md5 is also the file's etag."""
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


def file_id(seed: int, owner: str, sha256: str, occurrence: int) -> str:
    """26 characters of lowercase RFC 4648 base32, like Replicate's newer file ids; derived from
    the seed, caller, content and how many identical uploads came before, so a suite gets the
    same ids on every run."""
    digest = hashlib.blake2b(
        f"{seed}\x00{owner}\x00{sha256}\x00{occurrence}".encode(),
        digest_size=20,
        person=b"mock-server-file",
    ).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:ID_LENGTH]


@dataclass(frozen=True, slots=True)
class FilePage:
    results: list[StoredFile]
    next_before: int | None  # pass as `before` for the next (older) page
    previous_after: int | None  # pass as `after` for the previous (newer) page


class FileStore(Protocol):
    """Every method may raise StoreUnavailable (a shared store that cannot be reached)."""

    async def next_occurrence(self, key: str) -> int:
        """How many uploads with this key came before this one (then counts this one)."""
        ...

    async def add(self, file: StoredFile) -> StoredFile:
        """Store `file`, giving it the next `seq`; returns the stored record."""
        ...

    async def get(self, owner: str, file_id: str) -> StoredFile | None:
        """`owner`'s file with this id; None for an unknown id or another token's file."""
        ...

    async def delete(self, owner: str, file_id: str) -> bool: ...

    async def count(self, owner: str) -> int: ...

    async def page(
        self, owner: str, *, before: int | None = None, after: int | None = None, limit: int = 100
    ) -> FilePage:
        """`owner`'s files, newest first, older than `before` or newer than `after`."""
        ...

    async def purge(self, owner: str, now: datetime) -> None:
        """Forget `owner`'s files that have expired at `now`."""
        ...

    async def reset(self, owner: str | None = None) -> None:
        """Forget every file (only `owner`'s, a files_space, when given) and upload count."""
        ...


class MemoryFileStore:
    """Dicts in this process; the limits (file size, files per token) are checked by the caller."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._seqs: defaultdict[str, list[int]] = defaultdict(list)  # owner -> seqs, ascending
        self._by_seq: dict[int, StoredFile] = {}
        self._occurrences: dict[str, int] = {}
        self._seq = 0

    async def reset(self, owner: str | None = None) -> None:
        if owner is None:
            self._clear()
            return
        for seq in self._seqs.pop(owner, []):
            del self._by_id[self._by_seq.pop(seq).id]
        mine = f"{owner}:"
        for key in [k for k in self._occurrences if k.startswith(mine)]:
            del self._occurrences[key]

    async def next_occurrence(self, key: str) -> int:
        n = self._occurrences.get(key, 0)
        self._occurrences[key] = n + 1
        return n

    async def add(self, file: StoredFile) -> StoredFile:
        self._seq += 1
        stored = replace(file, seq=self._seq)
        self._by_id[stored.id] = stored
        self._by_seq[stored.seq] = stored
        self._seqs[stored.owner].append(stored.seq)
        return stored

    async def get(self, owner: str, file_id: str) -> StoredFile | None:
        found = self._by_id.get(file_id)
        return found if found is not None and found.owner == owner else None

    async def delete(self, owner: str, file_id: str) -> bool:
        found = await self.get(owner, file_id)
        if found is None:
            return False
        del self._by_id[found.id]
        del self._by_seq[found.seq]
        seqs = self._seqs[owner]
        del seqs[bisect.bisect_left(seqs, found.seq)]
        return True

    async def count(self, owner: str) -> int:
        return len(self._seqs.get(owner, ()))

    async def page(
        self, owner: str, *, before: int | None = None, after: int | None = None, limit: int = 100
    ) -> FilePage:
        page = slice_page(self._seqs.get(owner, []), before, after, limit)
        return FilePage(
            results=[self._by_seq[s] for s in page.seqs],
            next_before=page.next_before,
            previous_after=page.previous_after,
        )

    async def purge(self, owner: str, now: datetime) -> None:
        # Upload order is creation order while the clock runs forwards; a manual clock set back
        # can break that, so every record is checked (a token keeps at most --max-files).
        expired = [
            self._by_seq[s].id
            for s in self._seqs.get(owner, ())
            if self._by_seq[s].expires_at <= now
        ]
        for gone in expired:
            await self.delete(owner, gone)
