"""Pinning uploads to gallery images and letting them go again.

An attached upload is pinned (tus refuses to terminate it, cleanup skips it). A detached one is
unpinned and marked failed with code `detached`: its derivatives are deleted right after the
transaction commits, so it can no longer be attached (the owner still reads its bytes through
GET /files/{id} until it is terminated or expires).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from sqlalchemy import update
from sqlmodel import Session

from server.db import utcnow
from server.models import GalleryImage, Upload, UploadStatus
from server.storage import MediaStore

log = logging.getLogger("tusgallery.api")

DETACHED = "detached"


def pin_uploads(session: Session, upload_ids: Collection[str]) -> None:
    if upload_ids:
        session.execute(
            update(Upload)
            .where(Upload.id.in_(upload_ids))  # type: ignore[attr-defined]
            .values(pinned=True, updated_at=utcnow())
            # Nothing in the session needs refreshing; matching it against 1000 loaded rows
            # would be most of a large finalize's time.
            .execution_options(synchronize_session=False)
        )


def detach_uploads(session: Session, upload_ids: Collection[str]) -> None:
    if upload_ids:
        session.execute(
            update(Upload)
            .where(Upload.id.in_(upload_ids))  # type: ignore[attr-defined]
            .values(
                pinned=False,
                status=UploadStatus.FAILED,
                error_code=DETACHED,
                error="detached from its gallery; its derivatives were deleted",
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )


def media_keys(images: Iterable[GalleryImage]) -> list[str]:
    return [key for image in images for key in (image.display_key, image.thumb_key)]


async def delete_media(media: MediaStore, keys: Iterable[str]) -> None:
    """Remove derivatives of detached images; only ever called after the commit."""
    for key in keys:
        try:
            await media.delete(key)
        except Exception:
            # The DB no longer refers to it: an orphan for cleanup, not an error for the caller.
            log.exception("could not delete media object %s", key)
