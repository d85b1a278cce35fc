"""uploads and api tokens

Revision ID: 0001_core
Revises:
Create Date: 2026-11-29 06:55:44.591482
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import server.db

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("metadata_header", sa.String(), nullable=True),
        sa.Column(
            "meta",
            JSON,
            nullable=False,
        ),
        sa.Column(
            "storage_state",
            JSON,
            nullable=False,
        ),
        sa.Column("concat", sa.String(length=8), nullable=True),
        sa.Column(
            "concat_parts",
            JSON,
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("processing_started_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("processing_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "result",
            JSON,
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_uploads_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_status"))
        batch_op.drop_index(batch_op.f("ix_uploads_owner"))
        batch_op.drop_index(batch_op.f("ix_uploads_expires_at"))

    op.drop_table("uploads")
    op.drop_table("api_tokens")
