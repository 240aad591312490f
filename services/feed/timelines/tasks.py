"""Fan-out jobs (arq): write a new root post to its audience's home timelines, in batches.

One job writes one batch of `fanout_batch_size` followers (by user id) and enqueues the job of
the next batch, so a model with many followers never holds one job for long and a retried
job repeats only its own batch; writing a post to a timeline twice changes nothing (ZADD).
"""

from __future__ import annotations

import uuid
from typing import Any

from arq import ArqRedis
from redis.asyncio import Redis

from services.feed.deps import FeedContext
from services.feed.follows import repository as follows
from services.feed.models import PostStatus
from services.feed.posts import repository as posts
from services.feed.posts.service import FEED_QUEUE
from services.feed.timelines import store
from shared.db import session_scope

FANOUT_JOB = "fan_out_post"


async def enqueue_fan_out(jobs: ArqRedis, post_id: uuid.UUID, after: uuid.UUID | None) -> None:
    """One job id per batch: a repeated enqueue (a replayed event) is a no-op in arq."""
    await jobs.enqueue_job(
        FANOUT_JOB,
        str(post_id),
        str(after) if after else None,
        _job_id=f"feed-fanout:{post_id}:{after or 'first'}",
        _queue_name=FEED_QUEUE,
    )


async def fan_out_post(ctx: dict[str, Any], post_id: str, after: str | None = None) -> int:
    """The job: how many built timelines of this batch got the post."""
    feed: FeedContext = ctx["feed"]
    redis: Redis = ctx["events_redis"]
    async with session_scope(feed.sessionmaker) as session:
        post = await posts.get_post(session, uuid.UUID(post_id))
        if (
            post is None
            or post.model_id is None
            or post.parent_id is not None
            or post.deleted
            or post.status != PostStatus.PUBLISHED
            or post.published_at is None
        ):
            return 0
        size = feed.settings.fanout_batch_size
        batch = list(
            await follows.audience_batch(
                session,
                post.model_id,
                post.owner_id,
                after=uuid.UUID(after) if after else None,
                limit=size,
            )
        )
    entry = (post.id, store.micros(post.published_at))
    written = await store.push(redis, batch, entry, feed.settings.home_timeline_cap)
    if len(batch) == size:
        await enqueue_fan_out(ctx["redis"], post.id, batch[-1])
    return written
