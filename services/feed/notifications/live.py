"""Each person's live notifications: a capped Redis Stream per recipient, appended by the
consumer after the notification committed, read by `GET /api/v1/notifications/stream`.

Appending is exactly once per notification: a small Lua script sets a marker key for the
notification id and adds the entry only when the marker was new, atomically. A consumer that
crashed after committing but before appending handles the event again, finds the rows already
there and appends whichever of them was not appended yet, never one twice. The SSE event id is
the stream entry id, so a client resuming with `Last-Event-ID` reads on from the entry after it
(entries trimmed away by the cap are in `GET /api/v1/notifications`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from services.feed.notifications.schemas import NotificationRead
from shared.sse import ServerSentEvent

_PREFIX = "llmnet:feed:notifications:"
# Markers outlive any retry of the event that made the notification.
MARKER_TTL_SECONDS = 7 * 24 * 3600
_APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[3])
end
return false
"""


def stream_key(user_id: uuid.UUID) -> str:
    return f"{_PREFIX}{user_id}"


def _marker_key(notification_id: int) -> str:
    return f"{_PREFIX}appended:{notification_id}"


async def append(
    redis: Redis, notification: NotificationRead, recipient: uuid.UUID, cap: int
) -> bool:
    """Add the notification to its recipient's stream unless it is there already."""
    script = redis.register_script(_APPEND_ONCE)
    keys = [stream_key(recipient), _marker_key(notification.id)]
    added = await script(keys=keys, args=[MARKER_TTL_SECONDS, cap, notification.model_dump_json()])
    return bool(added)


async def start_id(redis: Redis, user_id: uuid.UUID, last_event_id: str | None) -> str:
    """Where a stream starts: after `Last-Event-ID` when given (the route checks its form),
    else after the newest entry."""
    if last_event_id is not None:
        return last_event_id
    newest = await redis.xrevrange(stream_key(user_id), count=1)
    return str(newest[0][0]) if newest else "0-0"


async def follow(
    redis: Redis, user_id: uuid.UUID, after: str, *, block_ms: int
) -> AsyncIterator[ServerSentEvent]:
    """The recipient's notifications after `after`, as they arrive."""
    key = stream_key(user_id)
    while True:
        response = await redis.xread({key: after}, count=100, block=block_ms)
        for _, entries in response or []:
            for entry_id, fields in entries:
                after = entry_id
                yield ServerSentEvent(raw_data=fields["data"], event="notification", id=entry_id)
