"""Running the feed worker's timeline machinery in-process: the consumer groups over the
events the platform's relay published, then the fan-out jobs they enqueued."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import ArqRedis
from sqlalchemy import func, select

from services.feed.follows.consumer import person_follows_consumer
from services.feed.posts.service import FEED_QUEUE
from services.feed.timelines.consumer import timelines_consumer
from services.feed.timelines.tasks import fan_out_post
from shared.db import session_scope
from shared.events.models import OutboxEvent


async def relayed(ctx: dict[str, Any]) -> None:
    """Wait until the relay has published every committed event."""
    for _ in range(100):
        async with session_scope(ctx["feed"].sessionmaker) as session:
            pending = await session.scalar(
                select(func.count()).where(OutboxEvent.published_at.is_(None))
            )
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox relay did not publish the events")


async def consume(ctx: dict[str, Any]) -> None:
    """Both consumer groups handle every event published so far."""
    await relayed(ctx)
    # A short block: read what is there, do not wait for more.
    for consumer in (
        person_follows_consumer(ctx, block_ms=10),
        timelines_consumer(ctx, block_ms=10),
    ):
        await consumer.ensure_groups()
        await consumer.consume_once()


async def run_fan_out(ctx: dict[str, Any]) -> list[int]:
    """Run the queued fan-out jobs (and those they enqueue) as the worker would."""
    pool: ArqRedis = ctx["redis"]
    written: list[int] = []
    while jobs := await pool.queued_jobs(queue_name=FEED_QUEUE):
        await pool.delete(FEED_QUEUE)
        for job in jobs:
            assert job.function == "fan_out_post", job.function
            written.append(await fan_out_post(ctx, *job.args, **job.kwargs))
    return written


async def settle(ctx: dict[str, Any]) -> list[int]:
    """Events consumed, fan-out done."""
    await consume(ctx)
    return await run_fan_out(ctx)
