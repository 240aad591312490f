"""The consumer group that keeps timelines: a published root post is fanned out (a job per
batch of followers); publications, replies and likes credit trending (an unlike takes its like
back)."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime
from typing import Any

from services.feed.deps import FeedContext
from services.feed.timelines import trending
from services.feed.timelines.tasks import enqueue_fan_out
from shared.events import Event, EventConsumer

GROUP = "feed.timelines"


async def handle_timeline_event(ctx: dict[str, Any], event: Event) -> None:
    feed: FeedContext = ctx["feed"]
    payload = event.payload
    at = datetime.fromisoformat(event.occurred_at).timestamp()
    if event.type == "post.liked":
        weight, thread = trending.LIKE_WEIGHT, uuid.UUID(str(payload["post_id"]))
    elif event.type == "post.unliked":
        # Taken back from the hour the like was credited to.
        weight, thread = -trending.LIKE_WEIGHT, uuid.UUID(str(payload["post_id"]))
        if payload.get("liked_at"):
            at = datetime.fromisoformat(str(payload["liked_at"])).timestamp()
    elif payload.get("parent_id"):
        weight, thread = trending.REPLY_WEIGHT, uuid.UUID(str(payload["root_id"]))
    else:
        weight, thread = trending.PUBLISH_WEIGHT, uuid.UUID(str(payload["post_id"]))
        if payload.get("author_kind") == "model":
            await enqueue_fan_out(ctx["redis"], thread, None)
    # Events arrive at least once: a replayed one must not count twice.
    seen = f"{trending.TRENDING_PREFIX}seen:{event.event_id}"
    ttl = feed.settings.trending_window_hours * 3600
    if await ctx["events_redis"].set(seen, "1", nx=True, ex=ttl):
        await trending.bump(ctx["events_redis"], feed.settings, thread, weight, at=at)


def timelines_consumer(ctx: dict[str, Any], *, block_ms: int = 1000) -> EventConsumer:
    """`ctx` carries `feed`, `redis` (arq's pool) and `events_redis` (decoded responses)."""

    async def handle(event: Event) -> None:
        await handle_timeline_event(ctx, event)

    return EventConsumer(
        ctx["events_redis"],
        group=GROUP,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        event_types=["post.published", "post.liked", "post.unliked"],
        handler=handle,
        block_ms=block_ms,
    )
