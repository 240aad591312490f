"""Queries on attachments."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import Attachment


async def list_for(session: AsyncSession, conversation_id: uuid.UUID) -> list[Attachment]:
    query = (
        select(Attachment)
        .where(Attachment.conversation_id == conversation_id)
        .order_by(Attachment.created_at, Attachment.id)
    )
    return list(await session.scalars(query))


async def count_for(session: AsyncSession, conversation_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count())
        .select_from(Attachment)
        .where(Attachment.conversation_id == conversation_id)
    )
    return int(total or 0)


async def get(
    session: AsyncSession, conversation_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment | None:
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None or attachment.conversation_id != conversation_id:
        return None
    return attachment


async def delete_for(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    await session.execute(delete(Attachment).where(Attachment.conversation_id == conversation_id))
