"""Audit records: who did what to whom, from where. Written in the request's transaction by
every domain; read back by admin (admin/repository.py)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import AuditAction, AuditRecord


def record_audit(
    session: AsyncSession,
    action: AuditAction,
    target_id: object,
    *,
    actor_id: uuid.UUID | None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `action` on `target_id` (a thing of kind `action.target`)."""
    session.add(
        AuditRecord(
            action=action.value,
            actor_id=actor_id,
            target_type=action.target.value,
            target_id=str(target_id),
            ip=ip,
            details=details or {},
        )
    )
