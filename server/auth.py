"""Bearer-token authentication.

A principal is a name. `TUSGALLERY_ADMIN_TOKEN` authenticates as `admin`; other tokens live in the
`api_tokens` table as sha256 hashes (`tusgallery token create NAME` prints a new one). Lookups
are cached briefly so a chunk-per-request upload does not pay a DB round trip per chunk.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlmodel import Session, select
from starlette.requests import HTTPConnection

from server.db import Database, utcnow
from server.errors import Unauthorized
from server.models import ApiToken

ADMIN_PRINCIPAL = "admin"
_CACHE_SECONDS = 30.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_token(session: Session, name: str) -> str:
    """Store a new token for principal `name` and return it (shown once, never stored)."""
    token = new_token()
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    return token


def revoke_token(session: Session, name: str) -> bool:
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.add(row)
    return True


class Authenticator:
    def __init__(self, db: Database, admin_token: str | None) -> None:
        self._db = db
        self._admin_token = admin_token
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def principal_for_token(self, token: str) -> str | None:
        if self._admin_token and hmac.compare_digest(token, self._admin_token):
            return ADMIN_PRINCIPAL
        digest = hash_token(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]

        def lookup(session: Session) -> str | None:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
            return row.name if row is not None and row.revoked_at is None else None

        principal = await self._db.run(lookup)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, now + _CACHE_SECONDS)
        return principal

    async def authenticate(self, conn: HTTPConnection) -> str:
        """The request's principal, or `Unauthorized` (401 with WWW-Authenticate)."""
        header = conn.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized()
        principal = await self.principal_for_token(token)
        if principal is None:
            raise Unauthorized()
        return principal
