"""What the feed worker runs beside its jobs (part of `services.feed.worker`): the outbox relay
for the events its jobs record, and the consumer groups that project follows of people, keep
timelines and trending, write notifications and collect the recommender's signals."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from services.feed.follows.consumer import person_follows_consumer
from services.feed.notifications.consumer import notification_consumer
from services.feed.recommendations.consumer import signals_consumer
from services.feed.timelines.consumer import timelines_consumer
from shared.events import EventConsumer, EventRelay
from shared.redis_client import create_redis


async def start(ctx: dict[str, Any]) -> None:
    """After `ctx["feed"]` is built: start the relay and the consumers as tasks."""
    if "events_redis" not in ctx:
        ctx["events_redis"] = create_redis(ctx["settings"].redis_url)
        ctx["background_owns_redis"] = True
    consumers = [
        person_follows_consumer(ctx),
        timelines_consumer(ctx),
        notification_consumer(ctx),
        signals_consumer(ctx),
    ]
    ctx["background_consumers"] = consumers
    ctx["background_consumer_tasks"] = [
        asyncio.create_task(c.run(), name="feed-consumer") for c in consumers
    ]
    # Jobs publish posts: their events go out as soon as the job commits (a commit wakes the
    # relay of its own process), not at the app's next poll.
    ctx["background_relay"] = asyncio.create_task(
        EventRelay(ctx["sessionmaker"], ctx["events_redis"]).run(), name="feed-worker-relay"
    )


async def stop(ctx: dict[str, Any]) -> None:
    consumers: list[EventConsumer] = ctx.get("background_consumers", [])
    for consumer in consumers:
        await consumer.stop()
    for task in ctx.get("background_consumer_tasks", []):
        if not task.done():
            task.cancel()  # best effort; awaiting a consumer could hang (see EventConsumer)
    relay: asyncio.Task[None] | None = ctx.get("background_relay")
    if relay is not None:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(relay, 5)
    if ctx.pop("background_owns_redis", False):
        await ctx["events_redis"].aclose()
