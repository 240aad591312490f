"""Queries on usage samples; nothing else in the hub writes SQL for them."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import ModelUsageSample


async def add_sample(session: AsyncSession, sample: ModelUsageSample) -> None:
    session.add(sample)
    await session.flush()


async def latency_stats(
    session: AsyncSession, model_id: uuid.UUID, recent: int
) -> tuple[float, float]:
    """The mean and the 95th percentile of the model's `recent` latest latencies."""
    latest = (
        select(ModelUsageSample.latency_ms)
        .where(ModelUsageSample.model_id == model_id)
        .order_by(ModelUsageSample.id.desc())
        .limit(recent)
        .subquery()
    )
    avg, p95 = (
        await session.execute(
            select(
                func.avg(latest.c.latency_ms),
                func.percentile_cont(0.95).within_group(latest.c.latency_ms),
            )
        )
    ).one()
    return float(avg), float(p95)


async def delete_older_samples(session: AsyncSession, keep: int) -> int:
    """Delete all but each model's `keep` latest samples; how many went."""
    ranked = select(
        ModelUsageSample.id,
        func.row_number()
        .over(partition_by=ModelUsageSample.model_id, order_by=ModelUsageSample.id.desc())
        .label("rank"),
    ).subquery()
    result = await session.execute(
        delete(ModelUsageSample).where(
            ModelUsageSample.id.in_(select(ranked.c.id).where(ranked.c.rank > keep))
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
