"""Queries of messages (the tree, a branch's path, stale answers) and their feedback."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from services.inference.models import Message, MessageFeedback, MessageStatus


async def get_message(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Message | None:
    return await session.scalar(
        select(Message).where(Message.id == message_id, Message.conversation_id == conversation_id)
    )


def _path_statement() -> Select[Message]:
    ancestors = (
        select(Message.id, Message.parent_id, literal(0).label("depth"))
        .where(
            Message.id == bindparam("message_id"),
            Message.conversation_id == bindparam("conversation_id"),
        )
        .cte("ancestors", recursive=True)
    )
    ancestors = ancestors.union_all(
        select(Message.id, Message.parent_id, (ancestors.c.depth + 1).label("depth")).join(
            ancestors, Message.id == ancestors.c.parent_id
        )
    )
    return (
        select(Message)
        .join(ancestors, Message.id == ancestors.c.id)
        .order_by(ancestors.c.depth.desc())
    )


# Built once: every turn reads its path, and building this statement (and its cache key) anew
# cost more CPU than running it.
_PATH = _path_statement()


async def path_to(
    session: AsyncSession, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> list[Message]:
    """The messages from the root down to `message_id`, root first; empty when the message is
    not in this conversation."""
    params = {"message_id": message_id, "conversation_id": conversation_id}
    return list(await session.scalars(_PATH, params))


_MESSAGES = cast(Table, Message.__table__)
# Every column but those the database fills (timestamps, the search vector).
_WRITTEN = [c for c in _MESSAGES.c if c.server_default is None and c.computed is None]
# On the table, built once: every turn writes two messages, and the ORM's flush of them cost
# three times the CPU of this statement (measured).
_ADD = insert(_MESSAGES).returning(
    _MESSAGES.c.created_at, _MESSAGES.c.updated_at, sort_by_parameter_order=True
)


async def add_messages(session: AsyncSession, messages: Sequence[Message]) -> None:
    """Insert new messages, each with every written field set (the column defaults are not
    applied here); their timestamps are set from the database's."""
    rows = [{c.key: getattr(message, c.key) for c in _WRITTEN} for message in messages]
    written = await session.execute(_ADD, rows)
    for message, (created_at, updated_at) in zip(messages, written.all(), strict=True):
        set_committed_value(message, "created_at", created_at)
        set_committed_value(message, "updated_at", updated_at)


async def finish(
    session: AsyncSession, message_id: uuid.UUID, values: dict[str, Any]
) -> Message | None:
    """Finalise a streaming message, as written; None when it was not streaming any more
    (someone else, the owner or the sweeper, finalised it first)."""
    result = await session.scalars(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.STREAMING)
        .values(**values, updated_at=func.now(), completed_at=func.now())
        .returning(Message),
        execution_options={"populate_existing": True},
    )
    return result.one_or_none()


async def save_partial(session: AsyncSession, message_id: uuid.UUID, content: str) -> None:
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.STREAMING)
        .values(content=content, updated_at=func.now())
    )


async def streaming(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """Ids of streaming messages, least recently written first."""
    rows = await session.scalars(
        select(Message.id)
        .where(Message.status == MessageStatus.STREAMING)
        .order_by(Message.updated_at)
        .limit(limit)
    )
    return list(rows)


async def put_feedback(
    session: AsyncSession,
    message_id: uuid.UUID,
    user_id: uuid.UUID,
    rating: int,
    comment: str | None,
) -> MessageFeedback:
    statement = (
        insert(MessageFeedback)
        .values(message_id=message_id, user_id=user_id, rating=rating, comment=comment)
        .on_conflict_do_update(
            index_elements=[MessageFeedback.message_id, MessageFeedback.user_id],
            set_={"rating": rating, "comment": comment, "updated_at": func.now()},
        )
        .returning(MessageFeedback)
    )
    row: MessageFeedback | None = await session.scalar(
        statement, execution_options={"populate_existing": True}
    )
    assert row is not None
    return row


async def delete_feedback(session: AsyncSession, message_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    feedback = await session.get(MessageFeedback, (message_id, user_id))
    if feedback is None:
        return False
    await session.delete(feedback)
    await session.flush()
    return True


async def feedback_summary(
    session: AsyncSession, model_id: uuid.UUID
) -> list[tuple[uuid.UUID | None, int, int, int]]:
    """Per model version of the model: (version id, up votes, down votes, comments)."""
    rows = await session.execute(
        select(
            Message.model_version_id,
            func.count().filter(MessageFeedback.rating == 1),
            func.count().filter(MessageFeedback.rating == -1),
            func.count(MessageFeedback.comment),
        )
        .join(Message, Message.id == MessageFeedback.message_id)
        .where(Message.model_id == model_id)
        .group_by(Message.model_version_id)
        .order_by(Message.model_version_id)
    )
    return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]
