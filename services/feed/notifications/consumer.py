"""The consumer group that turns domain events into notifications (run by the feed worker)."""

from __future__ import annotations

import os
import socket
from typing import Any

from services.feed.deps import FeedContext
from services.feed.notifications.producer import EVENT_TYPES, notify
from shared.events import Event, EventConsumer

GROUP = "feed.notifications"


def notification_consumer(
    ctx: dict[str, Any],
    *,
    consumer: str | None = None,
    claim_idle_ms: int = 60_000,
    block_ms: int = 1000,
) -> EventConsumer:
    """`ctx` carries `feed` (the FeedContext) and `events_redis` (decoded responses).

    A member that dies mid-batch leaves its events pending; another member (or the same one
    restarted) claims them after `claim_idle_ms` and handles them again, which makes no second
    notification (see producer.notify)."""
    feed: FeedContext = ctx["feed"]
    redis = ctx["events_redis"]

    async def handle(event: Event) -> None:
        await notify(feed, redis, event)

    return EventConsumer(
        redis,
        group=GROUP,
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        event_types=EVENT_TYPES,
        handler=handle,
        claim_idle_ms=claim_idle_ms,
        block_ms=block_ms,
    )
