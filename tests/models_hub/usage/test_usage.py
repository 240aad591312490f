"""Usage statistics: fed by the inference service's `model.usage` events, never by clients."""

from __future__ import annotations

import uuid

import pytest

from services.models_hub.usage.consumer import usage_consumer
from shared.db import session_scope
from shared.events import EventRelay, record_event
from shared.redis_client import create_redis
from tests.models_hub.conftest import create_model, developer


async def test_usage_events_update_statistics(client, platform):
    dev = await developer(client)
    model = await create_model(client, dev)
    async with session_scope(platform.sessionmaker) as session:
        for latency in (100.0, 200.0, 300.0, 400.0):
            record_event(
                session,
                "model.usage",
                {
                    "model_id": model["id"],
                    "latency_ms": latency,
                    "completion_tokens": 10,
                    "prompt_tokens": 5,
                },
                source="inference",
            )
        # Malformed events are dropped, not retried forever.
        record_event(session, "model.usage", {"model_id": str(uuid.uuid4())}, source="inference")
    await EventRelay(platform.sessionmaker, platform.redis).publish_pending()
    events_redis = create_redis(platform.common["redis_url"])
    consumer = usage_consumer({"events_redis": events_redis, "sessionmaker": platform.sessionmaker})
    await consumer.ensure_groups()
    await consumer.consume_once()
    await events_redis.aclose()

    stats = (await client.get(f"/api/v1/models/{model['id']}")).json()["stats"]
    assert stats["usage_count"] == 4
    assert stats["tokens_generated"] == 40
    assert stats["avg_latency_ms"] == 250.0
    assert stats["p95_latency_ms"] == pytest.approx(385.0)
    assert stats["last_used_at"] is not None
    # Clients cannot set statistics.
    refused = await client.patch(
        f"/api/v1/models/{model['id']}", json={"usage_count": 1_000_000}, headers=dev.headers
    )
    assert refused.status_code == 422
