"""Moderation: admins list, search and export everyone's conversations and messages.

Exports are CSV, streamed: rows are read in keyset pages of `EXPORT_BATCH`, each page in its
own short transaction, and written as they are read, so an export of millions of messages
holds neither a transaction nor the file in memory. Cells that a spreadsheet would take for a
formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) are prefixed with `'`
(OWASP's advice against CSV injection): moderators open these files in spreadsheets, and the
content is whatever users and models wrote.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.inference.moderation import repository
from services.inference.moderation.repository import ConversationFilter, MessageFilter
from services.inference.moderation.schemas import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    ModeratedConversation,
    ModeratedMessage,
    ModeratedMessageRead,
)
from shared.accounts_client import AccountsClient
from shared.db import session_scope
from shared.errors import NotFound
from shared.pagination import Page

EXPORT_BATCH = 500
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Row = TypeVar("Row")
Read = TypeVar("Read", bound=BaseModel)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(v) for v in values])
    return buffer.getvalue()


async def _export(
    sessionmaker: async_sessionmaker[AsyncSession],
    columns: list[str],
    page: Callable[[AsyncSession, str | None], Awaitable[tuple[list[Row], str | None]]],
    read: type[Read],
) -> AsyncIterator[str]:
    yield _csv_line(columns)
    cursor: str | None = None
    while True:
        async with session_scope(sessionmaker) as session:
            rows, cursor = await page(session, cursor)
        for row in rows:
            values = read.model_validate(row).model_dump()
            yield _csv_line([values[c] for c in columns])
        if cursor is None:
            return


async def _usernames(
    accounts: AccountsClient, user_ids: set[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """Each id's username, asked of accounts at once (a page has at most 100 authors)."""

    async def one(user_id: uuid.UUID) -> str | None:
        try:
            return (await accounts.user(user_id)).username
        except NotFound:
            return None  # an account since deleted: its messages stay

    ids = list(user_ids)
    names = await asyncio.gather(*(one(i) for i in ids))
    return dict(zip(ids, names, strict=True))


class ModerationService:
    async def conversations(
        self, session: AsyncSession, where: ConversationFilter, *, cursor: str | None, limit: int
    ) -> Page[ModeratedConversation]:
        rows, next_cursor = await repository.conversations_page(
            session, where, cursor=cursor, limit=limit
        )
        return Page(
            items=[ModeratedConversation.model_validate(r) for r in rows], next_cursor=next_cursor
        )

    async def messages(
        self,
        session: AsyncSession,
        accounts: AccountsClient,
        where: MessageFilter,
        *,
        cursor: str | None,
        limit: int,
    ) -> Page[ModeratedMessageRead]:
        """A page of the matching messages, each with its author's username and its
        conversation's title, so that a moderator reads names rather than ids."""
        rows, next_cursor = await repository.messages_page(
            session, where, cursor=cursor, limit=limit
        )
        titles = await repository.conversation_titles(session, {r.conversation_id for r in rows})
        names = await _usernames(accounts, {r.author_id for r in rows})
        items = [
            ModeratedMessageRead.model_validate(r).model_copy(
                update={
                    "author_username": names[r.author_id],
                    "conversation_title": titles.get(r.conversation_id, ""),
                }
            )
            for r in rows
        ]
        return Page(items=items, next_cursor=next_cursor)

    def export_conversations(
        self, sessionmaker: async_sessionmaker[AsyncSession], where: ConversationFilter
    ) -> AsyncIterator[str]:
        """CSV lines of the matching conversations, newest first, header first."""

        async def page(session: AsyncSession, cursor: str | None) -> Any:
            return await repository.conversations_page(
                session, where, cursor=cursor, limit=EXPORT_BATCH
            )

        return _export(sessionmaker, CONVERSATION_COLUMNS, page, ModeratedConversation)

    def export_messages(
        self, sessionmaker: async_sessionmaker[AsyncSession], where: MessageFilter
    ) -> AsyncIterator[str]:
        """CSV lines of the matching messages, newest first, header first."""

        async def page(session: AsyncSession, cursor: str | None) -> Any:
            return await repository.messages_page(session, where, cursor=cursor, limit=EXPORT_BATCH)

        return _export(sessionmaker, MESSAGE_COLUMNS, page, ModeratedMessage)


moderation_service = ModerationService()
