"""model token caps

Revision ID: a7c3e1f0b2d4
Revises: 3905c10c6b6b
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c3e1f0b2d4"
down_revision: str | None = "3905c10c6b6b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("daily_token_cap", sa.BigInteger(), nullable=True))
    op.add_column("models", sa.Column("user_daily_token_cap", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_usage_ledger_model_created", "usage_ledger", ["model_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_usage_ledger_model_created", table_name="usage_ledger")
    op.drop_column("models", "user_daily_token_cap")
    op.drop_column("models", "daily_token_cap")
