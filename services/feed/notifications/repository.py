"""Queries on notifications and muted kinds; nothing else in the feed writes SQL for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.feed.models import Notification, NotificationMute
from shared.db import utcnow
from shared.pagination import CursorPart, SortKey, keyset_page


async def add(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert one notification; None when this event already notified this recipient."""
    query = (
        insert(Notification)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id", "recipient_id"])
        .returning(Notification.id)
    )
    result: int | None = await session.scalar(query)
    return result


async def for_event(session: AsyncSession, event_id: uuid.UUID) -> Sequence[Notification]:
    query = select(Notification).where(Notification.event_id == event_id).order_by(Notification.id)
    return list(await session.scalars(query))


async def page(
    session: AsyncSession,
    recipient_id: uuid.UUID,
    *,
    unread: bool,
    cursor: str | None,
    limit: int,
) -> tuple[list[Notification], str | None]:
    query = select(Notification).where(Notification.recipient_id == recipient_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    keys = [SortKey(Notification.id, CursorPart.INT64, descending=True)]
    return await keyset_page(session, query, keys, cursor=cursor, limit=limit)


async def unread_count(session: AsyncSession, recipient_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        Notification.recipient_id == recipient_id, Notification.read_at.is_(None)
    )
    return int(await session.scalar(query) or 0)


async def mark_read(
    session: AsyncSession, recipient_id: uuid.UUID, notification_id: int
) -> Notification | None:
    """The recipient's notification, read (its first read time kept); None if not theirs."""
    query = (
        update(Notification)
        .where(Notification.id == notification_id, Notification.recipient_id == recipient_id)
        .values(read_at=func.coalesce(Notification.read_at, utcnow()))
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    return await session.scalar(query)


async def mark_all_read(session: AsyncSession, recipient_id: uuid.UUID) -> int:
    query = (
        update(Notification)
        .where(Notification.recipient_id == recipient_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    )
    return len(list(await session.scalars(query)))


async def muted_kinds(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    query = (
        select(NotificationMute.kind)
        .where(NotificationMute.user_id == user_id)
        .order_by(NotificationMute.kind)
    )
    return list(await session.scalars(query))


async def is_muted(session: AsyncSession, user_id: uuid.UUID, kind: str) -> bool:
    query = select(NotificationMute.kind).where(
        NotificationMute.user_id == user_id, NotificationMute.kind == kind
    )
    return await session.scalar(query) is not None


async def set_muted(session: AsyncSession, user_id: uuid.UUID, kinds: Sequence[str]) -> None:
    await session.execute(
        delete(NotificationMute).where(
            NotificationMute.user_id == user_id, NotificationMute.kind.not_in(list(kinds))
        )
    )
    if kinds:
        await session.execute(
            insert(NotificationMute)
            .values([{"user_id": user_id, "kind": kind} for kind in kinds])
            .on_conflict_do_nothing()
        )
