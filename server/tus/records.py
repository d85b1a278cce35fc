"""The upload rows the tus handler reads and writes. Plain functions over a Session, run through
`Database.run` so they stay off the event loop."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Table, bindparam, delete
from sqlmodel import Session, select

from server.db import utcnow
from server.models import Upload, UploadStatus

_UPLOADS: Table = Upload.__table__  # type: ignore[attr-defined]
_PROGRESS = _UPLOADS.update().where(
    _UPLOADS.c.id == bindparam("upload_id"), _UPLOADS.c.offset == bindparam("from_offset")
)


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
    from_offset: int,
    offset: int,
    length: int | None,
    storage_state: dict[str, Any],
    expires_at: dt.datetime | None,
    complete: bool,
) -> bool:
    """Record the bytes a PATCH stored; `complete` marks the last byte landed (and made durable).

    Applies only if the row still has the offset the PATCH started from: False means the row
    was removed or moved on behind the caller's back, and nothing was recorded.
    """
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
    # A Core UPDATE on the table, not the ORM's: this runs once per PATCH, and the ORM bulk
    # update compiles, evaluates and synchronises a session nobody reads afterwards, which
    # doubled the DB time of a chunk (scripts/bench_support/changes.md).
    result = session.connection().execute(
        _PROGRESS.values(**values), {"upload_id": upload_id, "from_offset": from_offset}
    )
    return result.rowcount == 1


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
