"""Audit records: who did what to whom, from where. Written in the request's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import AuditRecord


def record_audit(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None,
    target_type: str | None = None,
    target_id: object | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditRecord(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            ip=ip,
            details=details or {},
        )
    )
