"""Queries on fine-tune jobs; nothing else in the hub writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import FineTuneJob, FineTuneStatus, ModelVersion
from shared.pagination import CursorPart, SortKey, keyset_page

_UNFINISHED = (FineTuneStatus.QUEUED, FineTuneStatus.RUNNING)
_NEWEST_FIRST = [
    SortKey(FineTuneJob.created_at, CursorPart.TIMESTAMP, descending=True),
    SortKey(FineTuneJob.id, CursorPart.UUID, descending=True),
]


async def get(
    session: AsyncSession, job_id: uuid.UUID, *, for_update: bool = False
) -> FineTuneJob | None:
    return await session.get(FineTuneJob, job_id, with_for_update=for_update)


async def add(session: AsyncSession, job: FineTuneJob) -> FineTuneJob:
    session.add(job)
    await session.flush()
    return job


async def page(
    session: AsyncSession,
    *,
    model_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    cursor: str | None,
    limit: int,
) -> tuple[list[FineTuneJob], str | None]:
    query = select(FineTuneJob)
    if model_id is not None:
        query = query.where(FineTuneJob.model_id == model_id)
    if owner_id is not None:
        query = query.where(FineTuneJob.owner_id == owner_id)
    return await keyset_page(session, query, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def count_unfinished(session: AsyncSession, owner_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        FineTuneJob.owner_id == owner_id, FineTuneJob.status.in_(_UNFINISHED)
    )
    return int(await session.scalar(query) or 0)


async def queue_position(session: AsyncSession, job: FineTuneJob) -> int:
    """1 + the queued jobs created before `job` (every fine-tune worker takes from one queue)."""
    query = select(func.count()).where(
        FineTuneJob.status == FineTuneStatus.QUEUED,
        (FineTuneJob.created_at < job.created_at)
        | ((FineTuneJob.created_at == job.created_at) & (FineTuneJob.id < job.id)),
    )
    return int(await session.scalar(query) or 0) + 1


async def heartbeat(
    session: AsyncSession, job_id: uuid.UUID, worker_id: str, now: datetime
) -> bool | None:
    """Renew the lease of a running job this worker holds; returns whether its cancel was
    requested, or None when the job is not ours any more (finished by the sweeper, deleted)."""
    row = (
        await session.execute(
            update(FineTuneJob)
            .where(
                FineTuneJob.id == job_id,
                FineTuneJob.status == FineTuneStatus.RUNNING,
                FineTuneJob.worker_id == worker_id,
            )
            .values(heartbeat_at=now)
            .returning(FineTuneJob.cancel_requested)
        )
    ).first()
    return None if row is None else bool(row[0])


async def stale_running(session: AsyncSession, silent_since: datetime) -> list[FineTuneJob]:
    """Running jobs whose worker has not reported since `silent_since`; locked, skipping any
    another sweeper holds."""
    rows = await session.scalars(
        select(FineTuneJob)
        .where(
            FineTuneJob.status == FineTuneStatus.RUNNING, FineTuneJob.heartbeat_at < silent_since
        )
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def old_queued(session: AsyncSession, created_before: datetime) -> list[FineTuneJob]:
    rows = await session.scalars(
        select(FineTuneJob).where(
            FineTuneJob.status == FineTuneStatus.QUEUED, FineTuneJob.created_at < created_before
        )
    )
    return list(rows)


async def model_versions(session: AsyncSession, model_id: uuid.UUID) -> list[ModelVersion]:
    """Oldest first."""
    rows = await session.scalars(
        select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.number)
    )
    return list(rows)
