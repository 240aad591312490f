"""Queries on users' prompt templates."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import PromptTemplate
from shared.pagination import CursorPart, SortKey, keyset_page

_NEWEST_FIRST = [
    SortKey(PromptTemplate.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(PromptTemplate.id, CursorPart.UUID, descending=True),
]


async def get(session: AsyncSession, template_id: uuid.UUID) -> PromptTemplate | None:
    return await session.get(PromptTemplate, template_id)


async def count_owned(session: AsyncSession, owner_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count()).select_from(PromptTemplate).where(PromptTemplate.owner_id == owner_id)
    )
    return int(total or 0)


async def name_taken(
    session: AsyncSession, owner_id: uuid.UUID, name: str, *, besides: uuid.UUID | None = None
) -> bool:
    query = select(PromptTemplate.id).where(
        PromptTemplate.owner_id == owner_id, PromptTemplate.name == name
    )
    if besides is not None:
        query = query.where(PromptTemplate.id != besides)
    return (await session.scalar(query)) is not None


async def page_owned(
    session: AsyncSession, owner_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[PromptTemplate], str | None]:
    query = select(PromptTemplate).where(PromptTemplate.owner_id == owner_id)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)
