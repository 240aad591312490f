"""inference: evaluation reports, prompt-lab A/B runs and their outputs

Revision ID: f3a4b5c6d7e8
Revises: e2f3a4b5c6d7
Create Date: 2026-12-06 05:00:00

The enum lists are written out here (not imported from the models), so this revision means
the same thing whatever the enums become later.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f3a4b5c6d7e8"
down_revision: str | None = "e2f3a4b5c6d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'queued', 'running', 'completed', 'failed'"
ARMS = "'original', 'rewrite'"


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _json(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_ref", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=True),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        _json("parameters"),
        _json("prompt_sets"),
        sa.Column("heldout_text", sa.Text(), nullable=True),
        _json("report", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_evaluations_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    op.create_index("ix_evaluations_owner_created", "evaluations", ["owner_id", "created_at"])
    op.create_index("ix_evaluations_model_created", "evaluations", ["model_id", "created_at"])
    op.create_table(
        "prompt_ab_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.Column("rewrite", sa.Text(), nullable=False),
        _json("models"),
        sa.Column("samples", sa.Integer(), nullable=False),
        _json("parameters"),
        sa.Column("status", sa.String(length=12), nullable=False),
        _json("summary", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_prompt_ab_runs_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_ab_runs")),
    )
    op.create_index("ix_prompt_ab_runs_owner_created", "prompt_ab_runs", ["owner_id", "created_at"])
    op.create_table(
        "prompt_ab_outputs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("model_ref", sa.String(length=100), nullable=False),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        _json("metrics"),
        _timestamp("created_at"),
        sa.CheckConstraint(f"arm IN ({ARMS})", name=op.f("ck_prompt_ab_outputs_arm_valid")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["prompt_ab_runs.id"],
            name=op.f("fk_prompt_ab_outputs_run_id_prompt_ab_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_ab_outputs")),
        sa.UniqueConstraint(
            "run_id",
            "model_ref",
            "arm",
            "sample",
            name=op.f("uq_prompt_ab_outputs_run_id_model_ref_arm_sample"),
        ),
    )
    op.create_index(
        op.f("ix_prompt_ab_outputs_run_id"), "prompt_ab_outputs", ["run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_prompt_ab_outputs_run_id"), table_name="prompt_ab_outputs")
    op.drop_table("prompt_ab_outputs")
    op.drop_index("ix_prompt_ab_runs_owner_created", table_name="prompt_ab_runs")
    op.drop_table("prompt_ab_runs")
    op.drop_index("ix_evaluations_model_created", table_name="evaluations")
    op.drop_index("ix_evaluations_owner_created", table_name="evaluations")
    op.drop_table("evaluations")
