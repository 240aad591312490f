"""Queries across everyone's conversations and messages (for admins)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import SEARCH_CONFIG, Conversation, Message, MessageRole
from shared.pagination import CursorPart, SortKey, keyset_page

_CONVERSATIONS_NEWEST = [
    SortKey(Conversation.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(Conversation.id, CursorPart.UUID, descending=True),
]
_MESSAGES_NEWEST = [
    SortKey(Message.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(Message.id, CursorPart.UUID, descending=True),
]


def _matches(column: ColumnElement[str], q: str) -> ColumnElement[bool]:
    """Full-text match on a generated tsvector column (GIN-indexed), web-search syntax:
    words, "quoted phrases", `or`, `-excluded`."""
    config: ColumnElement[Any] = literal_column(f"'{SEARCH_CONFIG}'::regconfig")
    return column.bool_op("@@")(func.websearch_to_tsquery(config, q))


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    q: str | None = None
    owner_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_deleted: bool = True

    def query(self) -> Select[Conversation]:
        conditions: list[ColumnElement[bool]] = []
        if self.q:
            conditions.append(_matches(Conversation.search, self.q))  # type: ignore[arg-type]
        if self.owner_id is not None:
            conditions.append(Conversation.owner_id == self.owner_id)
        if self.model_id is not None:
            conditions.append(Conversation.model_id == self.model_id)
        if self.since is not None:
            conditions.append(Conversation.created_at >= self.since)
        if self.until is not None:
            conditions.append(Conversation.created_at < self.until)
        if not self.include_deleted:
            conditions.append(Conversation.deleted_at.is_(None))
        return select(Conversation).where(*conditions)


@dataclass(frozen=True, slots=True)
class MessageFilter:
    q: str | None = None
    role: MessageRole | None = None
    model_id: uuid.UUID | None = None
    author_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    # A model by its "owner/name": also matches answers of a model since deleted.
    model_ref: str | None = None

    def query(self) -> Select[Message]:
        conditions: list[ColumnElement[bool]] = []
        if self.q:
            conditions.append(_matches(Message.search, self.q))  # type: ignore[arg-type]
        if self.role is not None:
            conditions.append(Message.role == self.role)
        if self.model_id is not None:
            conditions.append(Message.model_id == self.model_id)
        if self.model_ref is not None:
            conditions.append(Message.model_ref == self.model_ref.lower())
        if self.author_id is not None:
            conditions.append(Message.author_id == self.author_id)
        if self.conversation_id is not None:
            conditions.append(Message.conversation_id == self.conversation_id)
        if self.since is not None:
            conditions.append(Message.created_at >= self.since)
        if self.until is not None:
            conditions.append(Message.created_at < self.until)
        return select(Message).where(*conditions)


async def conversations_page(
    session: AsyncSession, where: ConversationFilter, *, cursor: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    return await keyset_page(
        session, where.query(), _CONVERSATIONS_NEWEST, cursor=cursor, limit=limit
    )


async def messages_page(
    session: AsyncSession, where: MessageFilter, *, cursor: str | None, limit: int
) -> tuple[list[Message], str | None]:
    return await keyset_page(session, where.query(), _MESSAGES_NEWEST, cursor=cursor, limit=limit)


async def conversation_titles(
    session: AsyncSession, conversation_ids: set[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(Conversation.id, Conversation.title).where(Conversation.id.in_(conversation_ids))
    )
    return {conversation_id: title for conversation_id, title in rows}
