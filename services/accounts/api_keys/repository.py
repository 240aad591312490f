"""Queries on API keys; nothing else in accounts writes SQL for them."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.models import ApiKey, User


async def get(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_with_owner(session: AsyncSession, key_hash: str) -> tuple[ApiKey, User] | None:
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == key_hash)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def count_active(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Keys of the user not revoked (expired ones count until revoked)."""
    count = await session.scalar(
        select(func.count()).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    return int(count or 0)


async def list_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[ApiKey]:
    """Newest first, revoked ones included."""
    keys = await session.scalars(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at.desc())
    )
    return list(keys)


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    """Insert `key` now (its id is needed)."""
    session.add(key)
    await session.flush()
    return key
