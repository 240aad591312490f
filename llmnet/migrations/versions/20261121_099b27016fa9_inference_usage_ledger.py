"""inference usage ledger

Revision ID: 099b27016fa9
Revises: 330ee3ca2258
Create Date: 2026-11-21 21:43:49.443109
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "099b27016fa9"
down_revision: str | None = "330ee3ca2258"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_quotas",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("daily_tokens", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_token_quotas")),
    )
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.String(length=64), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_ref", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_ledger")),
    )
    op.create_index(op.f("ix_usage_ledger_model_id"), "usage_ledger", ["model_id"], unique=False)
    op.create_index(
        "ix_usage_ledger_user_created", "usage_ledger", ["user_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_user_created", table_name="usage_ledger")
    op.drop_index(op.f("ix_usage_ledger_model_id"), table_name="usage_ledger")
    op.drop_table("usage_ledger")
    op.drop_table("token_quotas")
