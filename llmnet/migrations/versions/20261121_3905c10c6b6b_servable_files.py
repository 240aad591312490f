"""servable files

Revision ID: 3905c10c6b6b
Revises: 099b27016fa9
Create Date: 2026-11-21 22:35:00.261811
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3905c10c6b6b"
down_revision: str | None = "099b27016fa9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "model_versions",
        sa.Column(
            "servable_files",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )

    # Versions validated before this column existed serve what they stored.
    op.execute("UPDATE model_versions SET servable_files = files WHERE servable_prefix IS NOT NULL")


def downgrade() -> None:
    op.drop_column("model_versions", "servable_files")
