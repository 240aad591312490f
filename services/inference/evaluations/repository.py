"""Queries on evaluations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import Evaluation, EvaluationStatus
from shared.pagination import CursorPart, SortKey, keyset_page

_NEWEST_FIRST = [
    SortKey(Evaluation.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(Evaluation.id, CursorPart.UUID, descending=True),
]
_ACTIVE = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


async def get(session: AsyncSession, evaluation_id: uuid.UUID) -> Evaluation | None:
    return await session.get(Evaluation, evaluation_id)


async def count_active(session: AsyncSession, owner_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.count())
        .select_from(Evaluation)
        .where(Evaluation.owner_id == owner_id, Evaluation.status.in_(_ACTIVE))
    )
    return int(total or 0)


async def page_owned(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    model_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Evaluation], str | None]:
    query = select(Evaluation).where(Evaluation.owner_id == owner_id)
    if model_id is not None:
        query = query.where(Evaluation.model_id == model_id)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def start(session: AsyncSession, evaluation_id: uuid.UUID, now: datetime) -> bool:
    """Mark it running (again, after a crashed attempt); False once it has finished."""
    result = await session.execute(
        update(Evaluation)
        .where(Evaluation.id == evaluation_id, Evaluation.status.in_(_ACTIVE))
        .values(status=EvaluationStatus.RUNNING, started_at=now, done=0, error=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_progress(session: AsyncSession, evaluation_id: uuid.UUID, done: int) -> None:
    await session.execute(
        update(Evaluation)
        .where(Evaluation.id == evaluation_id, Evaluation.status == EvaluationStatus.RUNNING)
        .values(done=done)
    )


async def finish(
    session: AsyncSession,
    evaluation_id: uuid.UUID,
    *,
    status: EvaluationStatus,
    now: datetime,
    report: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Write the outcome once: only a queued or running evaluation takes one."""
    values: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
    if report is not None:
        values["report"] = report
        values["done"] = Evaluation.total
    result = await session.execute(
        update(Evaluation)
        .where(Evaluation.id == evaluation_id, Evaluation.status.in_(_ACTIVE))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
