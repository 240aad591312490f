"""models_hub: fine-tune jobs and version lineage

Revision ID: e2f3a4b5c6d7
Revises: d1e2f3a4b5c6
Create Date: 2026-12-06 04:21:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e2f3a4b5c6d7"
down_revision: str | None = "d1e2f3a4b5c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("parent_version_id", sa.Uuid(), nullable=True))
    op.add_column(
        "model_versions",
        sa.Column(
            "lineage",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_foreign_key(
        op.f("fk_model_versions_parent_version_id_model_versions"),
        "model_versions",
        "model_versions",
        ["parent_version_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_model_versions_parent_version_id"), "model_versions", ["parent_version_id"]
    )
    op.create_table(
        "fine_tune_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("base_version_id", sa.Uuid(), nullable=True),
        sa.Column("result_version_id", sa.Uuid(), nullable=False),
        sa.Column("result_version_created", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("hyperparameters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("datasets", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_fine_tune_jobs_status_valid"),
        ),
        sa.CheckConstraint(
            "method IN ('full', 'lora')", name=op.f("ck_fine_tune_jobs_method_valid")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_fine_tune_jobs_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["base_version_id"],
            ["model_versions.id"],
            name=op.f("fk_fine_tune_jobs_base_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tune_jobs")),
    )
    op.create_index(
        "ix_fine_tune_jobs_model_id_created_at", "fine_tune_jobs", ["model_id", "created_at"]
    )
    op.create_index(
        "ix_fine_tune_jobs_owner_id_created_at", "fine_tune_jobs", ["owner_id", "created_at"]
    )
    op.create_index(
        "ix_fine_tune_jobs_unfinished",
        "fine_tune_jobs",
        ["status", "created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_table("fine_tune_jobs")
    op.drop_index(op.f("ix_model_versions_parent_version_id"), table_name="model_versions")
    op.drop_constraint(
        op.f("fk_model_versions_parent_version_id_model_versions"),
        "model_versions",
        type_="foreignkey",
    )
    op.drop_column("model_versions", "lineage")
    op.drop_column("model_versions", "parent_version_id")
