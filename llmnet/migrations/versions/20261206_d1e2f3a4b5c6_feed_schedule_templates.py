"""feed: posting schedules from prompt templates

Revision ID: d1e2f3a4b5c6
Revises: c5d6e7f8a9b0
Create Date: 2026-12-06 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d1e2f3a4b5c6"
down_revision: str | None = "c5d6e7f8a9b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A schedule posts from its prompts or from a prompt template (with its variables).
    op.alter_column("posting_schedules", "prompts", existing_type=postgresql.JSONB(), nullable=True)
    op.add_column("posting_schedules", sa.Column("template_id", sa.Uuid(), nullable=True))
    op.add_column(
        "posting_schedules",
        sa.Column(
            "template_variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_posting_schedules_prompts_or_template"),
        "posting_schedules",
        "(prompts IS NULL) <> (template_id IS NULL)",
    )


def downgrade() -> None:
    # Template schedules have no prompts to fall back on: they go.
    op.execute("DELETE FROM posting_schedules WHERE prompts IS NULL")
    op.drop_constraint(
        op.f("ck_posting_schedules_prompts_or_template"), "posting_schedules", type_="check"
    )
    op.drop_column("posting_schedules", "template_variables")
    op.drop_column("posting_schedules", "template_id")
    op.alter_column(
        "posting_schedules", "prompts", existing_type=postgresql.JSONB(), nullable=False
    )
