"""state check constraints

Revision ID: c4d9b7e2a1f3
Revises: e88af3d1d3a6
Create Date: 2026-12-02 00:00:00

Every status, role, source, kind and level column holds a member of its enum. The lists are
written out here (not imported from the models), so this revision means the same thing
whatever the enums become later; a later change to an enum comes with its own revision.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4d9b7e2a1f3"
down_revision: str | None = "e88af3d1d3a6"
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
# (table, constraint name as the naming convention spells it, condition)
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("users", "ck_users_role_valid", "role IN ('user', 'admin')"),
    (
        "api_keys",
        "ck_api_keys_scopes_valid",
        "scopes <@ ARRAY['read', 'write', 'inference', 'admin']::varchar(20)[]",
    ),
    (
        "audit_records",
        "ck_audit_records_action_valid",
        f"action IN ({', '.join(repr(a) for a in _AUDIT_ACTIONS)})",
    ),
    (
        "audit_records",
        "ck_audit_records_target_type_valid",
        "target_type IN ('user', 'api_key', 'token_family')",
    ),
    ("models", "ck_models_visibility_valid", "visibility IN ('public', 'private', 'unlisted')"),
    ("models", "ck_models_source_valid", "source IN ('upload', 'remote')"),
    ("models", "ck_models_status_valid", "status IN ('ready', 'validating', 'failed', 'empty')"),
    (
        "model_versions",
        "ck_model_versions_status_valid",
        "status IN ('uploading', 'validating', 'ready', 'failed')",
    ),
    ("model_versions", "ck_model_versions_format_valid", "format IN ('safetensors', 'gguf')"),
    ("model_access_grants", "ck_model_access_grants_level_valid", "level IN ('use', 'manage')"),
    ("usage_ledger", "ck_usage_ledger_source_valid", "source IN ('local', 'remote')"),
    (
        "usage_ledger",
        "ck_usage_ledger_endpoint_valid",
        "endpoint IN ('chat.completions', 'completions')",
    ),
    (
        "usage_ledger",
        "ck_usage_ledger_status_valid",
        "status IN ('completed', 'cancelled', 'failed')",
    ),
)


def upgrade() -> None:
    for table, name, condition in _CHECKS:
        # op.f(): the name is final, the naming convention must not prefix it again.
        op.create_check_constraint(op.f(name), table, condition)


def downgrade() -> None:
    for table, name, _ in reversed(_CHECKS):
        op.drop_constraint(op.f(name), table, type_="check")
