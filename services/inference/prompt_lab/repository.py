"""Queries on prompt-lab A/B runs and their outputs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.inference.models import EvaluationStatus, PromptABOutput, PromptABRun
from shared.pagination import CursorPart, SortKey, keyset_page

_NEWEST_FIRST = [
    SortKey(PromptABRun.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(PromptABRun.id, CursorPart.UUID, descending=True),
]
_ACTIVE = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


async def get(session: AsyncSession, run_id: uuid.UUID) -> PromptABRun | None:
    return await session.get(PromptABRun, run_id)


async def outputs(session: AsyncSession, run_id: uuid.UUID) -> list[PromptABOutput]:
    result = await session.scalars(
        select(PromptABOutput)
        .where(PromptABOutput.run_id == run_id)
        .order_by(PromptABOutput.model_ref, PromptABOutput.arm, PromptABOutput.sample)
    )
    return list(result)


async def page_owned(
    session: AsyncSession, owner_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[PromptABRun], str | None]:
    query = select(PromptABRun).where(PromptABRun.owner_id == owner_id)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def start(session: AsyncSession, run_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(PromptABRun)
        .where(PromptABRun.id == run_id, PromptABRun.status.in_(_ACTIVE))
        .values(status=EvaluationStatus.RUNNING)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_output(session: AsyncSession, values: dict[str, Any]) -> None:
    """Store one answer; a retried job's second copy of it is dropped."""
    await session.execute(
        insert(PromptABOutput)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["run_id", "model_ref", "arm", "sample"])
    )


async def finish(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    status: EvaluationStatus,
    now: datetime,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    result = await session.execute(
        update(PromptABRun)
        .where(PromptABRun.id == run_id, PromptABRun.status.in_(_ACTIVE))
        .values(status=status, finished_at=now, summary=summary, error=error)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
