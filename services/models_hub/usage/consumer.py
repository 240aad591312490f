"""The consumer group that turns `model.usage` events into model statistics."""

from __future__ import annotations

import os
import socket
from typing import Any

from services.models_hub.usage.service import usage_service
from shared.db import session_scope
from shared.events import Event, EventConsumer


def usage_consumer(ctx: dict[str, Any]) -> EventConsumer:
    """`ctx` carries `events_redis` (decoded responses) and `sessionmaker`."""

    async def handle(event: Event) -> None:
        async with session_scope(ctx["sessionmaker"]) as session:
            await usage_service.record(session, event)

    return EventConsumer(
        ctx["events_redis"],
        group="models_hub.usage",
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        event_types=["model.usage"],
        handler=handle,
    )
