"""Administration of users and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.accounts.models import AuditAction, AuditTarget
from shared.auth.identity import Role
from shared.fields import Text


class AdminUserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str
    display_name: str | None
    role: Role
    is_model_developer: bool
    email_verified: bool
    is_banned: bool
    banned_at: datetime | None
    ban_reason: str | None
    created_at: datetime


class BanRequest(BaseModel):
    reason: Text = Field(min_length=1, max_length=500)


class RoleUpdate(BaseModel):
    role: Role


class AuditRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: uuid.UUID | None
    actor_username: str | None = Field(
        default=None, description="The actor's username (null: the system, or a deleted user)."
    )
    action: AuditAction
    target_type: AuditTarget | None
    target_id: str | None
    target_username: str | None = Field(
        default=None, description="The target user's username, when the target is a user."
    )
    ip: str | None
    details: dict[str, Any]
    created_at: datetime
