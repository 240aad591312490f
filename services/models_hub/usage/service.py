"""Usage statistics per model, fed by the inference service's `model.usage` events.

Clients cannot write these: they change only through events on the internal stream.
p95 is computed over the most recent samples, so it follows the model's current behaviour.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.models import Model, ModelUsageSample
from shared.events import Event

RECENT_SAMPLES = 1000


async def record_usage(session: AsyncSession, event: Event) -> None:
    payload = event.payload
    try:
        model_id = uuid.UUID(str(payload["model_id"]))
        latency_ms = float(payload["latency_ms"])
        tokens = int(payload.get("completion_tokens", 0))
    except (KeyError, TypeError, ValueError):
        return  # malformed events are dropped, not retried forever
    model = await session.get(Model, model_id, with_for_update=True)
    if model is None:
        return
    session.add(ModelUsageSample(model_id=model.id, latency_ms=latency_ms, tokens=tokens))
    await session.flush()
    recent = (
        select(ModelUsageSample.latency_ms)
        .where(ModelUsageSample.model_id == model.id)
        .order_by(ModelUsageSample.id.desc())
        .limit(RECENT_SAMPLES)
        .subquery()
    )
    avg, p95 = (
        await session.execute(
            select(
                func.avg(recent.c.latency_ms),
                func.percentile_cont(0.95).within_group(recent.c.latency_ms),
            )
        )
    ).one()
    model.usage_count += 1
    model.tokens_generated += tokens
    model.avg_latency_ms = float(avg)
    model.p95_latency_ms = float(p95)
    model.last_used_at = datetime.fromisoformat(event.occurred_at)


async def prune_samples(session: AsyncSession) -> int:
    """Keep only the samples the statistics still use."""
    ranked = select(
        ModelUsageSample.id,
        func.row_number()
        .over(partition_by=ModelUsageSample.model_id, order_by=ModelUsageSample.id.desc())
        .label("rank"),
    ).subquery()
    result = await session.execute(
        delete(ModelUsageSample).where(
            ModelUsageSample.id.in_(select(ranked.c.id).where(ranked.c.rank > RECENT_SAMPLES))
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
