"""Queries on refresh tokens; nothing else in accounts writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import RefreshToken
from shared.db import utcnow


def add_refresh_token(session: AsyncSession, token: RefreshToken) -> None:
    session.add(token)


async def spend_refresh_token(
    session: AsyncSession, token_id: str, at: datetime
) -> uuid.UUID | None:
    """Mark the token used, atomically: of two concurrent refreshes with one token, one wins.
    Returns its user's id, or None when it was already used or revoked (or never issued)."""
    return await session.scalar(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=at)
        .returning(RefreshToken.user_id)
    )


async def _revoke(session: AsyncSession, which: ColumnElement[bool]) -> None:
    await session.execute(
        update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    """Revoke every token of one login that is not revoked yet."""
    await _revoke(session, RefreshToken.family_id == family_id)


async def revoke_all_of_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every token of every login of the user that is not revoked yet."""
    await _revoke(session, RefreshToken.user_id == user_id)


async def families_revoked_since(
    session: AsyncSession, since: datetime
) -> list[tuple[uuid.UUID, datetime]]:
    """Families revoked after `since`, with the last time any of their tokens was revoked."""
    rows = await session.execute(
        select(RefreshToken.family_id, func.max(RefreshToken.revoked_at))
        .where(RefreshToken.revoked_at.is_not(None), RefreshToken.revoked_at > since)
        .group_by(RefreshToken.family_id)
    )
    return [(family_id, at) for family_id, at in rows if at is not None]


async def delete_expired_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete tokens that expired before `cutoff`; returns how many."""
    result = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
