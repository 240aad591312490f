"""Queries on mailed account tokens; nothing else in accounts writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import AccountToken, RefreshToken, TokenPurpose


def add(session: AsyncSession, token: AccountToken) -> None:
    session.add(token)


async def event_answered(session: AsyncSession, event_id: uuid.UUID) -> bool:
    """Whether a token was already mailed for this outbox event (a redelivery)."""
    return bool(await session.scalar(select(exists().where(AccountToken.event_id == event_id))))


async def get_for_update(
    session: AsyncSession, token_hash: str, purpose: TokenPurpose
) -> AccountToken | None:
    """The token with this hash, locked: of two concurrent uses, the second waits and then
    sees it used."""
    return await session.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose)
        .with_for_update()
    )


async def use_all(
    session: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose, at: datetime
) -> None:
    """Spend every unused token of this purpose: one use ends all the links mailed before."""
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=at)
    )


async def live_login_families(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The user's logins (refresh-token families) that still have an unrevoked token."""
    rows = await session.scalars(
        select(RefreshToken.family_id)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .distinct()
    )
    return list(rows)


async def delete_expired_before(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(delete(AccountToken).where(AccountToken.expires_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
