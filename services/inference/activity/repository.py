"""Queries on activity records and recording settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Insert,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import ActivityAction, ActivityRecord, ActivitySetting
from shared.pagination import CursorPart, SortKey, keyset_page

_NEWEST_FIRST = [SortKey(ActivityRecord.id, CursorPart.INT64, descending=True)]


def record_filter(
    *,
    user_id: uuid.UUID | None = None,
    action: ActivityAction | None = None,
    model_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(ActivityRecord.user_id == user_id)
    if action is not None:
        conditions.append(ActivityRecord.action == action)
    if model_id is not None:
        conditions.append(ActivityRecord.model_id == model_id)
    if since is not None:
        conditions.append(ActivityRecord.created_at >= since)
    if until is not None:
        conditions.append(ActivityRecord.created_at < until)
    return conditions


async def page(
    session: AsyncSession, conditions: list[ColumnElement[bool]], *, cursor: str | None, limit: int
) -> tuple[list[ActivityRecord], str | None]:
    query = select(ActivityRecord).where(*conditions)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def get_setting(session: AsyncSession, user_id: uuid.UUID) -> ActivitySetting | None:
    return await session.get(ActivitySetting, user_id)


async def delete_one(session: AsyncSession, user_id: uuid.UUID, record_id: int) -> bool:
    result = await session.execute(
        delete(ActivityRecord)
        .where(ActivityRecord.id == record_id, ActivityRecord.user_id == user_id)
        .returning(ActivityRecord.id)
    )
    return result.first() is not None


async def delete_all(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        delete(ActivityRecord).where(ActivityRecord.user_id == user_id).returning(ActivityRecord.id)
    )
    return len(result.all())


def _add_if_recording_statement() -> Insert:
    # Parameters named apart from the columns: an INSERT takes a parameter named like a
    # column as that column's value.
    recording = select(ActivitySetting.recording).where(
        ActivitySetting.user_id == bindparam("record_user_id")
    )
    columns = ["user_id", "action", "model_id", "conversation_id", "details"]
    values = select(
        bindparam("record_user_id", type_=ActivityRecord.user_id.type),
        bindparam("record_action", type_=ActivityRecord.action.type),
        bindparam("record_model_id", type_=ActivityRecord.model_id.type),
        bindparam("record_conversation_id", type_=ActivityRecord.conversation_id.type),
        bindparam("record_details", type_=JSONB),
    ).where(func.coalesce(recording.scalar_subquery(), bindparam("record_default", type_=Boolean)))
    # The table, not the entity: an ORM INSERT given parameters runs as a bulk insert of them.
    table = cast(Table, ActivityRecord.__table__)
    return insert(table).from_select(columns, values)


# Built once: it runs on every conversation turn, and building it (and its cache key) anew
# cost twice as much CPU as running it.
_ADD_IF_RECORDING = _add_if_recording_statement()


async def add_if_recording(session: AsyncSession, record: ActivityRecord, *, default: bool) -> None:
    """Insert `record` unless its user's setting (or, without one, `default`) says not to."""
    await session.execute(
        _ADD_IF_RECORDING,
        {
            "record_user_id": record.user_id,
            "record_action": record.action,
            "record_model_id": record.model_id,
            "record_conversation_id": record.conversation_id,
            "record_details": record.details,
            "record_default": default,
        },
    )
