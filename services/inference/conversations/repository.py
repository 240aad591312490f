"""Queries of conversations, their participants, and the messages they are read with."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from services.inference.models import (
    SEARCH_CONFIG,
    Attachment,
    Conversation,
    ConversationParticipant,
    Message,
    MessageFeedback,
)
from shared.pagination import CursorPart, SortKey, encode_cursor, keyset_page

# Newest activity first; the id makes the order total.
_BY_ACTIVITY = [
    SortKey(Conversation.updated_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(Conversation.id, CursorPart.UUID, descending=True),
]


async def get_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, *, for_update: bool = False
) -> Conversation | None:
    statement = select(Conversation).where(Conversation.id == conversation_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


# Built once, as every turn runs it (see messages/repository.py's `_PATH`).
_FOR_TURN = (
    select(
        Conversation,
        select(Attachment.id).where(Attachment.conversation_id == Conversation.id).exists(),
    )
    .where(Conversation.id == bindparam("conversation_id"))
    .with_for_update(of=Conversation)
)


async def get_for_turn(
    session: AsyncSession, conversation_id: uuid.UUID
) -> tuple[Conversation, bool] | None:
    """The conversation, locked, and whether it has attachments (one query: a turn needs both,
    and most conversations have none to read)."""
    result = await session.execute(_FOR_TURN, {"conversation_id": conversation_id})
    row = result.one_or_none()
    return None if row is None else (row[0], bool(row[1]))


# Built once, as every turn runs it. On the table: an ORM flush of the changed conversation
# cost several times the CPU of this statement.
_CONVERSATIONS = cast(Table, Conversation.__table__)
_ADVANCE = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("advance_id"))
    .values(
        current_message_id=bindparam("advance_current"),
        title=bindparam("advance_title"),
        updated_at=func.now(),
    )
)


async def advance(
    session: AsyncSession, conversation: Conversation, current_message_id: uuid.UUID, title: str
) -> None:
    """Set the conversation's current message and title (and its activity time) with one
    statement; the loaded object shows the new values without being written again."""
    await session.execute(
        _ADVANCE,
        {
            "advance_id": conversation.id,
            "advance_current": current_message_id,
            "advance_title": title,
        },
    )
    set_committed_value(conversation, "current_message_id", current_message_id)
    set_committed_value(conversation, "title", title)


async def add_conversation(session: AsyncSession, conversation: Conversation) -> Conversation:
    session.add(conversation)
    await session.flush()
    await session.refresh(conversation)  # the server-side timestamps
    return conversation


async def participant_role(
    session: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    return await session.scalar(
        select(ConversationParticipant.role).where(
            ConversationParticipant.conversation_id == conversation_id,
            ConversationParticipant.user_id == user_id,
        )
    )


def _title_matches(query: ColumnElement[Any]) -> ColumnElement[bool]:
    return Conversation.search.bool_op("@@")(query)


def _a_message_matches(query: ColumnElement[Any]) -> ColumnElement[bool]:
    return (
        select(Message.id)
        .where(Message.conversation_id == Conversation.id, Message.search.bool_op("@@")(query))
        .exists()
    )


async def page_visible(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    model_id: uuid.UUID | None,
    q: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Conversation], str | None]:
    """Conversations the user owns or was added to (not deleted), newest activity first; with
    `q`, those whose title or any message matches it (a web-search style query).

    Each combination of (owned, shared) and (title, messages) is its own query, merged here:
    without an OR, PostgreSQL picks per query between walking the activity index and checking
    each conversation (a common word: done after a page) and the GIN index (a rare one), and
    every query stays a few index reads however many messages are stored.
    """
    shared = select(ConversationParticipant.conversation_id).where(
        ConversationParticipant.user_id == user_id
    )
    scopes = [Conversation.owner_id == user_id, Conversation.id.in_(shared)]
    matches: list[ColumnElement[bool] | None] = [None]
    if q is not None:
        # A plan for this query's own words: a generic plan (which prepared statements switch
        # to) knows nothing of how common they are, and the right plan depends on exactly that.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        query = func.websearch_to_tsquery(SEARCH_CONFIG, q)
        matches = [_title_matches(query), _a_message_matches(query)]
    found: dict[uuid.UUID, Conversation] = {}
    more = False
    for scope in scopes:
        for match in matches:
            statement = select(Conversation).where(scope, Conversation.deleted_at.is_(None))
            if model_id is not None:
                statement = statement.where(Conversation.model_id == model_id)
            if match is not None:
                statement = statement.where(match)
            rows, next_cursor = await keyset_page(
                session, statement, _BY_ACTIVITY, cursor=cursor, limit=limit
            )
            more = more or next_cursor is not None
            found.update((c.id, c) for c in rows)
    ordered = sorted(found.values(), key=lambda c: (c.updated_at, c.id), reverse=True)
    page = ordered[:limit]
    if not page or not (more or len(ordered) > limit):
        return page, None
    return page, encode_cursor(page[-1].updated_at.isoformat(), str(page[-1].id))


async def roles_of(
    session: AsyncSession, user_id: uuid.UUID, conversation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The user's participant role in each of these conversations they are a participant of."""
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(ConversationParticipant.conversation_id, ConversationParticipant.role).where(
            ConversationParticipant.user_id == user_id,
            ConversationParticipant.conversation_id.in_(conversation_ids),
        )
    )
    return {conversation_id: role for conversation_id, role in rows}


async def messages_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[Message]:
    """Every message of every branch, oldest first."""
    return list(
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
    )


async def get_message(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.id == message_id, Message.conversation_id == conversation_id)
    )


async def participants_of(
    session: AsyncSession, conversation_id: uuid.UUID
) -> list[ConversationParticipant]:
    return list(
        await session.scalars(
            select(ConversationParticipant)
            .where(ConversationParticipant.conversation_id == conversation_id)
            .order_by(ConversationParticipant.added_at, ConversationParticipant.username)
        )
    )


async def get_participant(
    session: AsyncSession, conversation_id: uuid.UUID, username: str
) -> ConversationParticipant | None:
    return await session.scalar(
        select(ConversationParticipant).where(
            ConversationParticipant.conversation_id == conversation_id,
            ConversationParticipant.username == username.lower(),
        )
    )


async def add_participant(
    session: AsyncSession, participant: ConversationParticipant
) -> ConversationParticipant:
    session.add(participant)
    await session.flush()
    await session.refresh(participant)
    return participant


async def delete_participant(session: AsyncSession, participant: ConversationParticipant) -> None:
    await session.delete(participant)
    await session.flush()


async def expired_ids(
    session: AsyncSession, deleted_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Soft-deleted conversations past their undo window, locked for this purge (another purge
    running at once skips them)."""
    return list(
        await session.scalars(
            select(Conversation.id)
            .where(Conversation.deleted_at < deleted_before)
            .order_by(Conversation.deleted_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


async def delete_conversation(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    """The row, and with it (cascades) its participants, messages and their feedback."""
    await session.execute(delete(Conversation).where(Conversation.id == conversation_id))


async def feedback_of(
    session: AsyncSession, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> dict[uuid.UUID, MessageFeedback]:
    """The user's ratings of a conversation's answers, by message id."""
    rows = await session.scalars(
        select(MessageFeedback)
        .join(Message, Message.id == MessageFeedback.message_id)
        .where(Message.conversation_id == conversation_id, MessageFeedback.user_id == user_id)
    )
    return {row.message_id: row for row in rows}
