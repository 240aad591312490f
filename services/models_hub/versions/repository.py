"""Queries on model versions; nothing else in the hub writes SQL for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import ModelVersion, VersionStatus


async def get_version(
    session: AsyncSession, version_id: uuid.UUID, *, for_update: bool = False
) -> ModelVersion | None:
    return await session.get(ModelVersion, version_id, with_for_update=for_update)


async def list_versions(session: AsyncSession, model_id: uuid.UUID) -> list[ModelVersion]:
    """Newest first."""
    rows = await session.scalars(
        select(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .order_by(ModelVersion.number.desc())
    )
    return list(rows)


async def count_versions(
    session: AsyncSession, model_id: uuid.UUID, *, besides: uuid.UUID | None = None
) -> int:
    query = select(func.count()).where(ModelVersion.model_id == model_id)
    if besides is not None:
        query = query.where(ModelVersion.id != besides)
    return int(await session.scalar(query) or 0)


async def next_number(session: AsyncSession, model_id: uuid.UUID) -> int:
    """The number the model's next version gets (hold the model's row lock to use it)."""
    query = select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model_id)
    return int(await session.scalar(query) or 0) + 1


async def add_version(session: AsyncSession, version: ModelVersion) -> ModelVersion:
    """Insert `version` now (its id is needed)."""
    session.add(version)
    await session.flush()
    return version


async def delete_version(session: AsyncSession, version: ModelVersion) -> None:
    await session.delete(version)
    await session.flush()


async def stale_validations(session: AsyncSession, started_before: datetime) -> list[ModelVersion]:
    """Versions `validating` whose attempt's lease ran out, or whose job was never picked up
    (enqueued, then lost with Redis) since `started_before`; locked, skipping any another
    sweeper holds."""
    rows = await session.scalars(
        select(ModelVersion)
        .where(
            ModelVersion.status == VersionStatus.VALIDATING,
            or_(
                ModelVersion.validation_started_at < started_before,
                (ModelVersion.validation_started_at.is_(None))
                & (ModelVersion.updated_at < started_before),
            ),
        )
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def abandoned_uploads(session: AsyncSession, begun_before: datetime) -> list[ModelVersion]:
    """Versions still `uploading` that were begun before `begun_before`."""
    rows = await session.scalars(
        select(ModelVersion).where(
            ModelVersion.status == VersionStatus.UPLOADING,
            ModelVersion.created_at < begun_before,
        )
    )
    return list(rows)


async def get_by_number(
    session: AsyncSession, model_id: uuid.UUID, number: int
) -> ModelVersion | None:
    return await session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.number == number)
    )
