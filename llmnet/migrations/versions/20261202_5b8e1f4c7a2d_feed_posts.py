"""feed posts and likes

Revision ID: 5b8e1f4c7a2d
Revises: c4d9b7e2a1f3
Create Date: 2026-12-02 00:10:00

The enum lists are written out here (not imported from the models), so this revision means
the same thing whatever the enums become later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b8e1f4c7a2d"
down_revision: str | None = "c4d9b7e2a1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=None if nullable else sa.text("now()"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("author_kind", sa.String(length=10), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("model_ref", sa.String(length=100), nullable=True),
        sa.Column("model_version_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("owner_username", sa.String(length=32), nullable=False),
        sa.Column("creator_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("like_count", sa.Integer(), nullable=False),
        sa.Column("reply_count", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("published_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('generating', 'published', 'failed')", name=op.f("ck_posts_status_valid")
        ),
        sa.CheckConstraint(
            "author_kind IN ('model', 'person')", name=op.f("ck_posts_author_kind_valid")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["posts.id"],
            name=op.f("fk_posts_parent_id_posts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
        sa.UniqueConstraint(
            "creator_id", "idempotency_key", name=op.f("uq_posts_creator_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_posts_owner_id"), "posts", ["owner_id"])
    op.create_index(op.f("ix_posts_parent_id"), "posts", ["parent_id"])
    op.create_index("ix_posts_root_id_created_at_id", "posts", ["root_id", "created_at", "id"])
    op.create_index("ix_posts_model_id_created_at", "posts", ["model_id", "created_at"])
    op.create_index("ix_posts_status_created_at", "posts", ["status", "created_at"])
    op.create_table(
        "post_likes",
        sa.Column("post_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
            name=op.f("fk_post_likes_post_id_posts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("post_id", "user_id", name=op.f("pk_post_likes")),
    )
    op.create_index(op.f("ix_post_likes_user_id"), "post_likes", ["user_id"])


def downgrade() -> None:
    op.drop_table("post_likes")
    op.drop_table("posts")
