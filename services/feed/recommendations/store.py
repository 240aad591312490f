"""Where computed recommendations live: JSON documents in Redis, written by the job, read by
the endpoints (one GET per request). Each document expires after a few job intervals, so a
stopped worker's picks do not linger forever; a user with none gets the popular picks."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from redis.asyncio import Redis

from services.feed.recommendations.engine import Pick, Result

PREFIX = "llmnet:feed:recs:"
POPULAR = PREFIX + "popular"
COMPUTED_AT = PREFIX + "computed_at"
_BATCH = 500


def user_key(user_id: str) -> str:
    return f"{PREFIX}user:{user_id}"


def similar_key(kind: str, item_id: str) -> str:
    return f"{PREFIX}similar:{kind}:{item_id}"


def _dump(picks: list[Pick]) -> list[dict[str, Any]]:
    return [asdict(p) for p in picks]


async def save(redis: Redis, result: Result, *, ttl: int, computed_at: str) -> None:
    documents: list[tuple[str, str]] = [
        (POPULAR, json.dumps({k: _dump(v) for k, v in result.popular.items()}))
    ]
    documents += [
        (user_key(u), json.dumps({k: _dump(v) for k, v in lists.items()}))
        for u, lists in result.for_user.items()
    ]
    documents += [
        (f"{PREFIX}similar:{key}", json.dumps(_dump(picks)))
        for key, picks in result.similar.items()
    ]
    documents.append((COMPUTED_AT, computed_at))
    for start in range(0, len(documents), _BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for key, value in documents[start : start + _BATCH]:
                pipe.set(key, value, ex=ttl)
            await pipe.execute()


async def load(redis: Redis, key: str) -> Any:
    raw = await redis.get(key)
    return None if raw is None else json.loads(raw)
