"""Usage statistics per model, fed by the inference service's `model.usage` events.

Clients cannot write these: they change only through events on the internal stream.
p95 is computed over the most recent samples, so it follows the model's current behaviour.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.models_hub.catalog import repository as catalog_repository
from services.models_hub.models import ModelUsageSample
from services.models_hub.usage import repository
from shared.events import Event

RECENT_SAMPLES = 1000


class UsageService:
    async def record(self, session: AsyncSession, event: Event) -> None:
        """Fold one `model.usage` event into its model's statistics."""
        payload = event.payload
        try:
            model_id = uuid.UUID(str(payload["model_id"]))
            latency_ms = float(payload["latency_ms"])
            tokens = int(payload.get("completion_tokens", 0))
        except (KeyError, TypeError, ValueError):
            return  # malformed events are dropped, not retried forever
        model = await catalog_repository.get_model(session, model_id, for_update=True)
        if model is None:
            return
        await repository.add_sample(
            session, ModelUsageSample(model_id=model.id, latency_ms=latency_ms, tokens=tokens)
        )
        model.avg_latency_ms, model.p95_latency_ms = await repository.latency_stats(
            session, model.id, RECENT_SAMPLES
        )
        model.usage_count += 1
        model.tokens_generated += tokens
        model.last_used_at = datetime.fromisoformat(event.occurred_at)

    async def prune_samples(self, session: AsyncSession) -> int:
        """Keep only the samples the statistics still use."""
        return await repository.delete_older_samples(session, RECENT_SAMPLES)


usage_service = UsageService()
