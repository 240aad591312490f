"""Recommendation fixtures: project the events, then run the worker's job in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.feed.follows.consumer import person_follows_consumer
from services.feed.recommendations.consumer import signals_consumer
from services.feed.recommendations.tasks import compute_recommendations
from shared.redis_client import create_redis
from tests.factories import UserSession
from tests.feed.notifications.conftest import publish_outbox


@dataclass
class Recommender:
    platform: Any
    ctx: dict[str, Any]

    async def run(self) -> dict[str, Any]:
        """Relay the events so far, project them (the recommender's signals, follows of
        people) and run the recommendations job, as the feed worker does."""
        await publish_outbox(self.platform)
        for consumer in (
            signals_consumer(self.ctx, consumer="test", block_ms=50),
            person_follows_consumer(self.ctx),
        ):
            await consumer.ensure_groups()
            await consumer.consume_once()
        return await compute_recommendations(self.ctx)


@pytest.fixture
async def recommender(platform: Any, worker_ctx: dict[str, Any]) -> AsyncIterator[Recommender]:
    redis = create_redis(platform.common["redis_url"])
    ctx = {"feed": worker_ctx["feed"], "events_redis": redis, "sessionmaker": platform.sessionmaker}
    yield Recommender(platform, ctx)
    await redis.aclose()


async def recommendations_for(client: httpx.AsyncClient, user: UserSession) -> dict[str, Any]:
    response = await client.get("/api/v1/recommendations", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def post_ids(body: dict[str, Any]) -> list[str]:
    return [item["post"]["id"] for item in body["posts"]]


def model_ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["models"]]
