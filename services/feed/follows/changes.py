"""Follow changes as a Redis stream, so open live feeds apply them at once.

A live feed keeps the set of models and people its viewer follows in memory. When a follow
changes (a model followed or unfollowed here, or a person's follow projected from accounts),
the person's id is appended to this stream after the commit. Each process's live hub reads it
beside the post stream, in the same blocking XREAD, and tells only that person's open live
feeds, which re-read their follow sets: one database query per change and affected stream,
none for the others. The stream is a signal, not a record: it is trimmed, and a live feed
still re-reads its follows now and then in case it missed one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

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


def changed_user(fields: Mapping[Any, Any]) -> str:
    value = fields.get("user_id", fields.get(b"user_id", ""))
    return value.decode() if isinstance(value, bytes) else str(value)
