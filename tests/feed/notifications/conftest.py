"""Notification fixtures: the feed worker's notification consumer, run in-process on demand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.feed.notifications.consumer import notification_consumer
from shared.db import session_scope
from shared.events import EventConsumer, EventRelay
from shared.events.models import OutboxEvent
from shared.redis_client import create_redis
from tests.factories import UserSession


async def publish_outbox(platform: Any) -> None:
    """Relay every committed event to Redis now (the apps' own relays may be mid-way)."""
    relay = EventRelay(platform.sessionmaker, platform.redis)
    for _ in range(100):
        await relay.publish_pending()
        async with session_scope(platform.sessionmaker) as session:
            pending = await session.scalar(
                select(func.count()).where(OutboxEvent.published_at.is_(None))
            )
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not drain")


@dataclass
class Notifier:
    platform: Any
    ctx: dict[str, Any]

    def consumer(self, name: str = "test", *, claim_idle_ms: int = 60_000) -> EventConsumer:
        return notification_consumer(
            self.ctx, consumer=name, claim_idle_ms=claim_idle_ms, block_ms=50
        )

    async def deliver(self) -> None:
        """Relay the events recorded so far and let the consumer handle them."""
        await publish_outbox(self.platform)
        consumer = self.consumer()
        await consumer.ensure_groups()
        await consumer.consume_once()


@pytest.fixture
async def notifier(platform: Any, worker_ctx: dict[str, Any]) -> AsyncIterator[Notifier]:
    redis = create_redis(platform.common["redis_url"])
    yield Notifier(platform, {"feed": worker_ctx["feed"], "events_redis": redis})
    await redis.aclose()


async def notifications_of(
    client: httpx.AsyncClient, user: UserSession, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def read_events(
    client: httpx.AsyncClient,
    user: UserSession,
    count: int,
    *,
    last_event_id: str | None = None,
    after_connect: Any = None,
) -> list[tuple[str, dict[str, Any]]]:
    """`count` notification events from the user's stream, as (id, data); `after_connect` (an
    async callable) runs once the stream is open."""
    headers = dict(user.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(30):
        async with client.stream(
            "GET", "/api/v1/notifications/stream", headers=headers
        ) as response:
            assert response.status_code == 200
            if after_connect is not None:
                task = asyncio.create_task(after_connect())
            event_id, data = None, None
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:].strip())
                elif line == "" and data is not None:
                    assert event_id is not None
                    events.append((event_id, data))
                    event_id, data = None, None
                    if len(events) == count:
                        break
            if after_connect is not None:
                await task
    return events
