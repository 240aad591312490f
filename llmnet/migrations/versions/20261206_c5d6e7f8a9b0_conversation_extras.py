"""inference: attachments, prompt templates, activity records

Revision ID: c5d6e7f8a9b0
Revises: b3c4d5e6f7a8
Create Date: 2026-12-06 00:40:00

The enum lists are written out here (not imported from the models), so this revision means
the same thing whatever the enums become later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c5d6e7f8a9b0"
down_revision: str | None = "b3c4d5e6f7a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = (
    "'conversation.created', 'message.sent', 'message.regenerated', 'model.switched', "
    "'template.used', 'conversation.exported', 'conversation.deleted'"
)
KINDS = "'txt', 'md', 'json', 'csv', 'docx', 'pdf'"
COUNTERS = "'model', 'estimate'"


def _timestamp(name: str) -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "activity_records",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint(f"action IN ({ACTIONS})", name=op.f("ck_activity_records_action_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_records")),
    )
    op.create_index("ix_activity_records_user_id_id", "activity_records", ["user_id", "id"])
    op.create_index("ix_activity_records_created_at", "activity_records", ["created_at"])
    op.create_index(op.f("ix_activity_records_model_id"), "activity_records", ["model_id"])
    op.create_table(
        "activity_settings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_activity_settings")),
    )
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("variables", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_templates")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_prompt_templates_owner_id_name")),
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("extracted_tokens", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("token_counter", sa.String(length=10), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_attachments_kind_valid")),
        sa.CheckConstraint(
            f"token_counter IN ({COUNTERS})", name=op.f("ck_attachments_token_counter_valid")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_attachments_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(
        "ix_attachments_conversation_created", "attachments", ["conversation_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_table("prompt_templates")
    op.drop_table("activity_settings")
    op.drop_table("activity_records")
