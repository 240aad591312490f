"""feed: notifications, mutes, recommendations

Revision ID: a2b3c4d5e6f7
Revises: f1a2b3c4d5e6
Create Date: 2026-12-06 00:40:00

The kind list is written out here (not imported from the models), so this revision means the
same thing whatever the enum becomes later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a2b3c4d5e6f7"
down_revision: str | None = "f1a2b3c4d5e6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = (
    "kind IN ('version_validated', 'version_failed', 'model_posted', 'user_followed', "
    "'model_followed', 'post_liked', 'post_replied', 'finetune_completed', 'finetune_failed')"
)


def _now(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_username", sa.String(length=32), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("post_id", sa.Uuid(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        sa.CheckConstraint(_KINDS, name=op.f("ck_notifications_kind_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "event_id", "recipient_id", name=op.f("uq_notifications_event_id_recipient_id")
        ),
    )
    op.create_index("ix_notifications_recipient_id_id", "notifications", ["recipient_id", "id"])
    op.create_index(
        "ix_notifications_unread",
        "notifications",
        ["recipient_id", "id"],
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_table(
        "notification_mutes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.CheckConstraint(_KINDS, name=op.f("ck_notification_mutes_kind_valid")),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_notification_mutes")),
    )
    op.create_table(
        "rec_model_likes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        _now("created_at"),
        sa.PrimaryKeyConstraint("user_id", "model_id", name=op.f("pk_rec_model_likes")),
    )
    op.create_table(
        "rec_model_usage",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        _now("last_used_at"),
        sa.PrimaryKeyConstraint("user_id", "model_id", name=op.f("pk_rec_model_usage")),
    )


def downgrade() -> None:
    op.drop_table("rec_model_usage")
    op.drop_table("rec_model_likes")
    op.drop_table("notification_mutes")
    op.drop_table("notifications")
