"""Database tables (SQLModel).

Uploads and API tokens belong to the tus/auth core; homes, gallery images and idempotency records
belong to the homes API. The schema itself is managed by Alembic (server/migrations); these
classes must match it (tests compare them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from server.db import UTCDateTime, utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _json_column() -> Any:
    return Column(JSONType, nullable=False)


class UploadStatus:
    """Lifecycle of an upload. tus moves it to `complete`; the image pipeline owns the rest."""

    RECEIVING = "receiving"
    COMPLETE = "complete"  # all bytes stored, waiting for the pipeline to claim it
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Upload(SQLModel, table=True):
    __tablename__ = "uploads"

    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(index=True, max_length=64)
    # None while the length is deferred (creation-defer-length).
    length: int | None = Field(default=None, sa_type=BigInteger)
    offset: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"nullable": False})
    # The Upload-Metadata header as received (echoed on HEAD) and its decoded pairs.
    metadata_header: str | None = Field(default=None)
    meta: dict[str, str] = Field(default_factory=dict, sa_column=_json_column())
    # Backend-owned bytes bookkeeping (S3 multipart id and parts); opaque to everyone else.
    storage_state: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    # "partial" / "final" for the concatenation extension, None for a plain upload.
    concat: str | None = Field(default=None, max_length=8)
    concat_parts: list[str] = Field(default_factory=list, sa_column=_json_column())
    status: str = Field(default=UploadStatus.RECEIVING, max_length=16, index=True)
    error: str | None = Field(default=None)
    error_code: str | None = Field(default=None, max_length=32)
    # Set by the app when something refers to the bytes (an attached gallery image):
    # termination and cleanup leave a pinned upload alone.
    pinned: bool = Field(default=False)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    completed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    processing_started_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    processing_attempts: int = Field(default=0)
    # What the image pipeline found (dimensions, type, sha256, derivative keys).
    result: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())

    @property
    def is_complete(self) -> bool:
        return self.length is not None and self.offset >= self.length


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    # sha256 of the token: a leaked database does not leak usable tokens.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class Home(SQLModel, table=True):
    __tablename__ = "homes"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=10_000)
    # +1 on every change: finalize's `expected_version` compares against it (optimistic lock).
    version: int = Field(default=1)
    created_by: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class GalleryImage(SQLModel, table=True):
    """One processed upload placed in one gallery of one home.

    The unique upload_id is what guarantees an upload is attached at most once, whatever two
    concurrent finalizes decide; (home_id, gallery, position) keeps the order unambiguous.
    What the pipeline found is copied in at attach time so reading a home touches one table.
    """

    __tablename__ = "gallery_images"
    __table_args__ = (
        UniqueConstraint("upload_id", name="uq_gallery_images_upload_id"),
        UniqueConstraint("home_id", "gallery", "position", name="uq_gallery_images_position"),
    )

    id: str = Field(primary_key=True, max_length=32)
    home_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    gallery: str = Field(max_length=64)
    position: int
    # No ON DELETE: an attached upload is pinned, so its row must not vanish under the image.
    upload_id: str = Field(foreign_key="uploads.id", max_length=32)
    caption: str | None = Field(default=None, max_length=2000)
    content_type: str = Field(max_length=64)
    width: int
    height: int
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    display_key: str = Field(max_length=200)
    thumb_key: str = Field(max_length=200)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """The first successful answer to a request sent with an `Idempotency-Key`."""

    __tablename__ = "idempotency_records"

    principal: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    # sha256 of method, path and canonical body: the same key with another request is refused.
    request_hash: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
