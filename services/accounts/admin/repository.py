"""Queries of the admin pages: the user search and the audit trail."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import AuditRecord, AuditTarget, User
from shared.pagination import CursorPart, SortKey, keyset_page


async def search_users(
    session: AsyncSession, q: str | None, *, cursor: str | None, limit: int
) -> tuple[list[User], str | None]:
    """Users whose username, email or display name contains `q` (any case), by username."""
    query = select(User)
    if q:
        query = query.where(
            or_(
                User.username.icontains(q, autoescape=True),
                User.email.icontains(q, autoescape=True),
                User.display_name.icontains(q, autoescape=True),
            )
        )
    keys = [SortKey(User.username, CursorPart.TEXT)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)


async def audit_page(
    session: AsyncSession,
    action: str | None,
    user_id: uuid.UUID | None,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[AuditRecord], str | None]:
    """Audit records, newest first, of one action or all; with `user_id`, only those the user
    did or that were done to them."""
    query = select(AuditRecord)
    if action:
        query = query.where(AuditRecord.action == action)
    if user_id is not None:
        query = query.where(
            or_(
                AuditRecord.actor_id == user_id,
                and_(
                    AuditRecord.target_type == AuditTarget.USER.value,
                    AuditRecord.target_id == str(user_id),
                ),
            )
        )
    keys = [SortKey(AuditRecord.id, CursorPart.INT64, descending=True)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)


async def usernames(session: AsyncSession, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {user_id: username for user_id, username in rows}
