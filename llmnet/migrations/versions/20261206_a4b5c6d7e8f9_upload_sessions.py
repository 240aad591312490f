"""models_hub: resumable upload sessions and their received parts

Revision ID: a4b5c6d7e8f9
Revises: b5c6d7e8f9a0
Create Date: 2026-12-06 07:00:00

The status list is written out here (not imported from the models), so this revision means
the same thing whatever the enum becomes later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a4b5c6d7e8f9"
down_revision: str | None = "b5c6d7e8f9a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'open', 'completed', 'aborted', 'expired'"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("files", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _timestamp("completing_since", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_upload_sessions_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_sessions")),
    )
    op.create_index(op.f("ix_upload_sessions_model_id"), "upload_sessions", ["model_id"])
    op.create_index(
        "ix_upload_sessions_owner_id_created_at", "upload_sessions", ["owner_id", "created_at"]
    )
    op.create_index(
        "ix_upload_sessions_open_expires_at",
        "upload_sessions",
        ["expires_at"],
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "upload_session_parts",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("file_index", sa.Integer(), nullable=False),
        sa.Column("part_offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=False),
        _timestamp("received_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["upload_sessions.id"],
            name=op.f("fk_upload_session_parts_session_id_upload_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "file_index", "part_offset", name=op.f("pk_upload_session_parts")
        ),
    )


def downgrade() -> None:
    op.drop_table("upload_session_parts")
    op.drop_table("upload_sessions")
