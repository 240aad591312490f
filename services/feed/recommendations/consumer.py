"""The consumer group that projects the hub's and inference's events into the recommender's
signals: `model.liked` {model_id, user_id} and `model.usage` {model_id, user_id}; a
`model.deleted` forgets the model. (The hub records no event when a like is taken back, so a
projected like stays until the model is deleted; usage counts are approximate, since an event
delivered twice counts twice.)"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime
from typing import Any

from services.feed.deps import FeedContext
from services.feed.recommendations import repository
from shared.db import session_scope
from shared.events import Event, EventConsumer

GROUP = "feed.recommendations"
EVENT_TYPES = ("model.liked", "model.usage", "model.deleted")
logger = logging.getLogger("llmnet.feed.recommendations")


async def project(feed: FeedContext, event: Event) -> None:
    try:
        model_id = uuid.UUID(str(event.payload["model_id"]))
        user_id = None
        if event.type != "model.deleted":
            user_id = uuid.UUID(str(event.payload["user_id"]))
        at = datetime.fromisoformat(event.occurred_at)
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("dropping malformed %s event %s: %s", event.type, event.id, exc)
        return
    async with session_scope(feed.sessionmaker) as session:
        if user_id is None:
            await repository.forget_model(session, model_id)
        elif event.type == "model.liked":
            await repository.add_model_like(session, user_id, model_id)
        else:
            await repository.add_model_use(session, user_id, model_id, at)


def signals_consumer(
    ctx: dict[str, Any], *, consumer: str | None = None, block_ms: int = 1000
) -> EventConsumer:
    """`ctx` carries `feed` (the FeedContext) and `events_redis` (decoded responses)."""
    feed: FeedContext = ctx["feed"]

    async def handle(event: Event) -> None:
        await project(feed, event)

    return EventConsumer(
        ctx["events_redis"],
        group=GROUP,
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        event_types=EVENT_TYPES,
        handler=handle,
        block_ms=block_ms,
    )
