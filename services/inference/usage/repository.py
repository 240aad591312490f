"""Queries on the usage ledger and the per-user token quotas."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import TokenQuota, UsageRecord
from shared.pagination import CursorPart, SortKey, keyset_page

_TOKENS = UsageRecord.prompt_tokens + UsageRecord.completion_tokens
_NEWEST_FIRST = [SortKey(UsageRecord.id, CursorPart.INT64, descending=True)]


async def tokens_used(
    session: AsyncSession,
    since: datetime,
    *,
    user_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    except_user: uuid.UUID | None = None,
) -> int:
    """Prompt and completion tokens recorded since `since`, by one user and/or on one model,
    leaving out `except_user`'s."""
    conditions = [UsageRecord.created_at >= since]
    if user_id is not None:
        conditions.append(UsageRecord.user_id == user_id)
    if model_id is not None:
        conditions.append(UsageRecord.model_id == model_id)
    if except_user is not None:
        conditions.append(UsageRecord.user_id != except_user)
    total = await session.scalar(select(func.coalesce(func.sum(_TOKENS), 0)).where(*conditions))
    return int(total or 0)


async def get_quota(session: AsyncSession, user_id: uuid.UUID) -> TokenQuota | None:
    return await session.get(TokenQuota, user_id)


async def delete_quota(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(TokenQuota).where(TokenQuota.user_id == user_id))


def ledger_filter(
    *, user_id: uuid.UUID | None, model_id: uuid.UUID | None, since: datetime | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(UsageRecord.user_id == user_id)
    if model_id is not None:
        conditions.append(UsageRecord.model_id == model_id)
    if since is not None:
        conditions.append(UsageRecord.created_at >= since)
    return conditions


async def ledger_totals(
    session: AsyncSession, conditions: list[ColumnElement[bool]]
) -> tuple[int, int, int]:
    """Requests, prompt tokens and completion tokens of the matching rows."""
    row: Any = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
                func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            ).where(*conditions)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def ledger_page(
    session: AsyncSession,
    conditions: list[ColumnElement[bool]],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[UsageRecord], str | None]:
    """The matching rows, newest first, after `cursor`; and the next page's cursor."""
    query = select(UsageRecord).where(*conditions)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def daily_series(
    session: AsyncSession, model_id: uuid.UUID, since: datetime
) -> dict[date, tuple[int, int, int, float | None, float | None]]:
    """Per UTC day since `since`, the model's requests, prompt and completion tokens, and the
    median and 95th percentile of its latencies; days without use are absent."""
    day = func.date(func.timezone("UTC", UsageRecord.created_at)).label("day")
    rows: Any = await session.execute(
        select(
            day,
            func.count(),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
            func.percentile_cont(0.5).within_group(UsageRecord.latency_ms),
            func.percentile_cont(0.95).within_group(UsageRecord.latency_ms),
        )
        .where(UsageRecord.model_id == model_id, UsageRecord.created_at >= since)
        .group_by(day)
    )
    return {
        r[0]: (
            int(r[1]),
            int(r[2]),
            int(r[3]),
            None if r[4] is None else float(r[4]),
            None if r[5] is None else float(r[5]),
        )
        for r in rows
    }
