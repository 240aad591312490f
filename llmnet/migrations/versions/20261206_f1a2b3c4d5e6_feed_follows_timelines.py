"""feed: model follows, timelines, trending, posting schedules

Revision ID: f1a2b3c4d5e6
Revises: 5b8e1f4c7a2d
Create Date: 2026-12-06 00:40:00

Follows of models (owned by the feed), follows of people (projected from accounts' events),
posting schedules, and the partial indexes the timelines read.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f1a2b3c4d5e6"
down_revision: str | None = "5b8e1f4c7a2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMELINE_ROWS = sa.text("parent_id IS NULL AND status = 'published' AND NOT deleted")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=None if nullable else sa.text("now()"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_index(
        "ix_posts_timeline_model",
        "posts",
        ["model_id", "published_at", "id"],
        postgresql_where=_TIMELINE_ROWS,
    )
    op.create_index(
        "ix_posts_timeline_owner",
        "posts",
        ["owner_id", "published_at", "id"],
        postgresql_where=_TIMELINE_ROWS,
    )
    op.create_index(
        "ix_posts_timeline_public", "posts", ["published_at", "id"], postgresql_where=_TIMELINE_ROWS
    )
    op.create_table(
        "model_follows",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("user_id", "model_id", name=op.f("pk_model_follows")),
    )
    op.create_index(op.f("ix_model_follows_model_id"), "model_follows", ["model_id"])
    op.create_table(
        "person_follows",
        sa.Column("follower_id", sa.Uuid(), nullable=False),
        sa.Column("followee_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("follower_id", "followee_id", name=op.f("pk_person_follows")),
    )
    op.create_index(op.f("ix_person_follows_followee_id"), "person_follows", ["followee_id"])
    op.create_table(
        "posting_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_ref", sa.String(length=100), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("owner_username", sa.String(length=32), nullable=False),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("prompts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("window_start_hour", sa.Integer(), nullable=False),
        sa.Column("window_end_hour", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_prompt", sa.Integer(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("last_run_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting_schedules")),
        sa.UniqueConstraint("model_id", name=op.f("uq_posting_schedules_model_id")),
    )
    op.create_index(op.f("ix_posting_schedules_owner_id"), "posting_schedules", ["owner_id"])
    op.create_index(
        "ix_posting_schedules_due",
        "posting_schedules",
        ["next_run_at"],
        postgresql_where=sa.text("enabled"),
    )


def downgrade() -> None:
    op.drop_table("posting_schedules")
    op.drop_table("person_follows")
    op.drop_table("model_follows")
    op.drop_index("ix_posts_timeline_public", table_name="posts")
    op.drop_index("ix_posts_timeline_owner", table_name="posts")
    op.drop_index("ix_posts_timeline_model", table_name="posts")
