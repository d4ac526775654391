"""Who is calling: the bearer token, checked against --api-token, reduced to a private owner key."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from starlette.requests import Request

from mock_server.errors import Unauthenticated

INVALID = "You did not pass a valid authentication token"


def token_of(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthenticated()
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    # Replicate accepts `Bearer <token>` and the older `Token <token>`.
    if scheme.lower() not in ("bearer", "token") or not token or " " in token:
        raise Unauthenticated(INVALID)
    return token


@lru_cache(maxsize=4096)
def owner_of(token: str) -> str:
    """A short stable hash: records never hold the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def authenticate(request: Request, allowed: frozenset[str]) -> str:
    """The caller's owner key; 401 in Replicate's wording when the token is missing or refused."""
    token = token_of(request)
    if allowed and token not in allowed:
        raise Unauthenticated(INVALID)
    return owner_of(token)


def authenticate_admin(request: Request, admin_token: str | None) -> str:
    """With --admin-token the admin API needs that bearer token; without, it is open."""
    if admin_token is None:
        return ""
    if token_of(request) != admin_token:
        raise Unauthenticated(INVALID)
    return "admin"
