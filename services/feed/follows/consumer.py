"""The consumer group that projects accounts' follows of people into `person_follows`."""

from __future__ import annotations

import os
import socket
from typing import Any

from services.feed.follows.service import follow_service
from shared.db import session_scope
from shared.events import Event, EventConsumer

GROUP = "feed.person_follows"


def person_follows_consumer(ctx: dict[str, Any], *, block_ms: int = 1000) -> EventConsumer:
    """`ctx` carries `feed` and `events_redis` (decoded responses)."""

    async def handle(event: Event) -> None:
        async with session_scope(ctx["feed"].sessionmaker) as session:
            await follow_service.project_person_follow(session, ctx["events_redis"], event)

    return EventConsumer(
        ctx["events_redis"],
        group=GROUP,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        event_types=["user.followed", "user.unfollowed"],
        handler=handle,
        block_ms=block_ms,
    )
