"""The consumer group that mails verification and password reset links (accounts worker)."""

from __future__ import annotations

import os
import socket
from typing import Any

from services.accounts.recovery.service import MAIL_EVENTS, MailContext, recovery_service
from shared.events import Event, EventConsumer

GROUP = "accounts.mail"
# A mail the relay could not take is tried again after this long (the event stays pending).
RETRY_AFTER_MS = 60_000


def mail_consumer(
    ctx: dict[str, Any], *, block_ms: int = 1000, retry_after_ms: int = RETRY_AFTER_MS
) -> EventConsumer:
    """`ctx` carries `events_redis` (decoded responses) and `mail` (a MailContext)."""
    mail: MailContext = ctx["mail"]

    async def handle(event: Event) -> None:
        await recovery_service.deliver(mail, event)

    return EventConsumer(
        ctx["events_redis"],
        group=GROUP,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        event_types=sorted(MAIL_EVENTS),
        handler=handle,
        block_ms=block_ms,
        claim_idle_ms=retry_after_ms,
    )
