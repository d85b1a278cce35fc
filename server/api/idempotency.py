"""Idempotency-Key: a retried write returns its first answer and changes nothing.

Records are keyed by (principal, key) and hold a hash of the request (method, path, canonical
JSON body) and the first successful answer. They are written in the same transaction as the
change they describe, so a record exists exactly when the change committed. Only successes are
recorded: a refused request changed nothing, so retrying it is already harmless and may succeed
once its cause is gone (an upload that finished processing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session
from starlette.requests import Request

from server.errors import BadRequest, Unprocessable
from server.models import IdempotencyRecord

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    request_hash: str


def idempotency_key(request: Request, body: Any) -> IdempotencyKey | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            code="invalid_idempotency_key",
        )
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(
        f"{request.method} {request.url.path}\n{canonical}".encode()
    ).hexdigest()
    return IdempotencyKey(key, digest)


def load_record(session: Session, principal: str, key: IdempotencyKey) -> IdempotencyRecord | None:
    """The first answer for this key, or None; the same key with another request is 422."""
    record = session.get(IdempotencyRecord, (principal, key.key))
    if record is not None and record.request_hash != key.request_hash:
        raise Unprocessable(
            "this Idempotency-Key was already used with a different request",
            code="idempotency_key_reused",
        )
    return record


def save_record(
    session: Session, principal: str, key: IdempotencyKey, status: int, response: dict[str, Any]
) -> None:
    session.add(
        IdempotencyRecord(
            principal=principal,
            key=key.key,
            request_hash=key.request_hash,
            status_code=status,
            response=response,
        )
    )
    session.flush()
