"""accounts: email verification and password reset tokens

Revision ID: b6c7d8e9f0a1
Revises: a4b5c6d7e8f9
Create Date: 2026-12-06 08:00:00

Adds users.email_verified_at (existing accounts start unverified), the account_tokens table
(single-use mailed tokens, stored as SHA-256 hashes) and the two audit actions they write.
The lists are written out here (not imported from the models), so this revision means the
same thing whatever the enums become later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b6c7d8e9f0a1"
down_revision: str | None = "a4b5c6d7e8f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUDIT_ACTIONS = (
    "user.registered",
    "user.role_changed",
    "user.banned",
    "user.unbanned",
    "auth.login",
    "auth.logout",
    "auth.refresh_reuse",
    "api_key.created",
    "api_key.revoked",
)
_NEW_AUDIT_ACTIONS = ("auth.email_verified", "auth.password_reset")
_AUDIT_CHECK = "ck_audit_records_action_valid"


def _audit_check(actions: Sequence[str]) -> None:
    op.drop_constraint(op.f(_AUDIT_CHECK), "audit_records", type_="check")
    op.create_check_constraint(
        op.f(_AUDIT_CHECK), "audit_records", f"action IN ({', '.join(map(repr, actions))})"
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('email_verification', 'password_reset')",
            name=op.f("ck_account_tokens_purpose_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
        sa.UniqueConstraint("event_id", name=op.f("uq_account_tokens_event_id")),
    )
    op.create_index("ix_account_tokens_user_id_purpose", "account_tokens", ["user_id", "purpose"])
    op.create_index(op.f("ix_account_tokens_expires_at"), "account_tokens", ["expires_at"])
    _audit_check(_AUDIT_ACTIONS + _NEW_AUDIT_ACTIONS)


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM audit_records WHERE action IN :actions").bindparams(
            sa.bindparam("actions", _NEW_AUDIT_ACTIONS, expanding=True)
        )
    )
    _audit_check(_AUDIT_ACTIONS)
    op.drop_table("account_tokens")
    op.drop_column("users", "email_verified_at")
