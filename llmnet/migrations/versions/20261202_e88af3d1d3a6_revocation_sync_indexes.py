"""revocation sync indexes

Revision ID: e88af3d1d3a6
Revises: a7c3e1f0b2d4
Create Date: 2026-12-02 10:00:00

The accounts revocation sync reads banned users and recently revoked token families every
minute; partial indexes keep both reads small however many users and tokens there are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e88af3d1d3a6"
down_revision: str | None = "a7c3e1f0b2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_users_banned", "users", ["id"], unique=False, postgresql_where=sa.text("is_banned")
    )
    op.create_index(
        "ix_refresh_tokens_revoked_at",
        "refresh_tokens",
        ["revoked_at", "family_id"],
        unique=False,
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_revoked_at", table_name="refresh_tokens")
    op.drop_index("ix_users_banned", table_name="users")
