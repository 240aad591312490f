"""Follow changes as a Redis stream, so open live feeds apply them at once.

A live feed keeps the set of models and people its viewer follows in memory. When a follow
changes (a model followed or unfollowed here, or a person's follow projected from accounts),
the person's id is appended to this stream after the commit. Every open live feed reads it
beside the post stream, in the same blocking XREAD, and re-reads its follow sets only when the
change is its own viewer's: one database query per change and affected stream, none for the
others. The stream is a signal, not a record: it is trimmed, and a live feed still re-reads its
follows now and then in case it missed one.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

FOLLOW_CHANGES_STREAM = "llmnet:feed:follow-changes"
# Entries live only until every open stream has read them (well under a second): a short tail
# is plenty, and XADD trims it approximately (cheap).
_KEEP = 10_000


async def announce(redis: Redis, user_id: uuid.UUID) -> None:
    """`user_id`'s follows changed (call after the commit that changed them)."""
    await redis.xadd(
        FOLLOW_CHANGES_STREAM, {"user_id": str(user_id)}, maxlen=_KEEP, approximate=True
    )


async def newest_id(redis: Redis) -> str:
    """Where a new reader starts: after the newest change (every later one is seen)."""
    newest = await redis.xrevrange(FOLLOW_CHANGES_STREAM, count=1)
    if not newest:
        return "0-0"
    stream_id = newest[0][0]
    return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)


def changed_user(fields: dict[object, object]) -> str:
    value = fields.get("user_id", fields.get(b"user_id", ""))
    return value.decode() if isinstance(value, bytes) else str(value)
