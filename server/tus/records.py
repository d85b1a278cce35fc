"""The upload rows the tus handler reads and writes. Plain functions over a Session, run through
`Database.run` so they stay off the event loop."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, select

from server.db import utcnow
from server.models import Upload, UploadStatus


def get(session: Session, upload_id: str) -> Upload | None:
    return session.get(Upload, upload_id)


def get_many(session: Session, upload_ids: list[str]) -> dict[str, Upload]:
    rows = session.exec(select(Upload).where(Upload.id.in_(upload_ids)))  # type: ignore[attr-defined]
    return {row.id: row for row in rows}


def insert(session: Session, upload: Upload) -> None:
    session.add(upload)


def save_progress(
    session: Session,
    upload_id: str,
    *,
    offset: int,
    length: int | None,
    storage_state: dict[str, Any],
    expires_at: dt.datetime | None,
    complete: bool,
) -> None:
    """Record the bytes a PATCH stored; `complete` marks the last byte landed (and made durable)."""
    now = utcnow()
    values: dict[str, Any] = {
        "offset": offset,
        "length": length,
        "storage_state": storage_state,
        "updated_at": now,
        "expires_at": None if complete else expires_at,
    }
    if complete:
        values |= {"status": UploadStatus.COMPLETE, "completed_at": now}
    session.execute(update(Upload).where(Upload.id == upload_id).values(**values))  # type: ignore[arg-type]


def remove(session: Session, upload_id: str) -> None:
    session.execute(delete(Upload).where(Upload.id == upload_id))  # type: ignore[arg-type]


def expired(session: Session, now: dt.datetime, limit: int = 500) -> list[Upload]:
    """Incomplete uploads whose expiry has passed (and that nothing pinned)."""
    query = (
        select(Upload)
        .where(Upload.status == UploadStatus.RECEIVING)
        .where(Upload.expires_at != None)  # noqa: E711 - SQL IS NOT NULL
        .where(Upload.expires_at <= now)  # type: ignore[operator]
        .where(Upload.pinned == False)  # noqa: E712 - SQL comparison
        .limit(limit)
    )
    return list(session.exec(query))
