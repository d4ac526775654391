"""Prediction ids: 26 characters of lowercase Crockford base32, derived, never random."""

from __future__ import annotations

import hashlib
import re

import orjson

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 26


# Two digits (10 bits) at a time from one table: a pure-Python base32 costs three times as much.
_PAIRS = [ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024)]


def encode(data: bytes, length: int = ID_LENGTH) -> str:
    """The first `length` base32 digits (5 bits each) of `data` (`length` * 5 <= its bits),
    most significant first."""
    pairs = (length + 1) // 2
    number = int.from_bytes(data, "big") >> (len(data) * 8 - 10 * pairs)
    text = "".join([_PAIRS[(number >> shift) & 1023] for shift in range(10 * pairs - 10, -1, -10)])
    return text[:length]


def request_key(seed: int, owner: str, model: str, payload: object) -> str:
    """What makes two create requests 'the same': seed, caller, model and canonical input."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(canonical, digest_size=16, person=b"mock-server-key")
    digest.update(f"{seed}\x00{owner}\x00{model}".encode())
    return digest.hexdigest()


def prediction_id(key: str, occurrence: int) -> str:
    """The id of the `occurrence`-th (0-based) request with this key."""
    digest = hashlib.blake2b(f"{key}:{occurrence}".encode(), digest_size=17).digest()
    return encode(digest)


_VALID = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")


def is_valid(candidate: str) -> bool:
    return _VALID.fullmatch(candidate) is not None
