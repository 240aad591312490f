"""Queries of the admin pages: the user search and the audit trail."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import AuditRecord, User
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
    session: AsyncSession, action: str | None, *, cursor: str | None, limit: int
) -> tuple[list[AuditRecord], str | None]:
    """Audit records, newest first, of one action or all."""
    query = select(AuditRecord)
    if action:
        query = query.where(AuditRecord.action == action)
    keys = [SortKey(AuditRecord.id, CursorPart.INT64, descending=True)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)
