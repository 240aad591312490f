"""Trending threads, kept incrementally in Redis.

Each like of a root post, and each reply anywhere in its thread, adds a weight to the root in
the sorted set of the current hour (ZINCRBY, one command per event). The ranking sums the
hourly sets of the window, each weighted by how old it is (halved every
`trending_half_life_hours`): one ZUNIONSTORE of at most `trending_window_hours` sets, served
from a cached result for `trending_cache_seconds`. Nothing scans posts per request, and
activity older than the window simply falls out (hourly sets expire).
"""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from services.feed.config import FeedSettings

TRENDING_PREFIX = "llmnet:feed:trending:"
RANKING_KEY = TRENDING_PREFIX + "ranking"
LIKE_WEIGHT = 1.0
REPLY_WEIGHT = 2.0
# A new post enters with a little weight, so a quiet network still has a trending page.
PUBLISH_WEIGHT = 0.25
_RANKING_MAX = 1000


def _hour(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // 3600)


async def bump(
    redis: Redis, settings: FeedSettings, root_id: uuid.UUID, weight: float, *, at: float | None
) -> None:
    """Credit `weight` to the thread at time `at` (seconds; now if None), if inside the window."""
    hour = _hour(at)
    if hour <= _hour() - settings.trending_window_hours:
        return
    key = f"{TRENDING_PREFIX}{hour}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zincrby(key, weight, str(root_id))
        pipe.expire(key, (settings.trending_window_hours + 1) * 3600)
        await pipe.execute()


async def _rank(redis: Redis, settings: FeedSettings) -> None:
    now = _hour()
    hours = range(now - settings.trending_window_hours + 1, now + 1)
    weights = {
        f"{TRENDING_PREFIX}{h}": 0.5 ** ((now - h) / settings.trending_half_life_hours)
        for h in hours
    }
    async with redis.pipeline(transaction=True) as pipe:
        # Overwrites the ranking at once: concurrent recomputations are harmless.
        pipe.zunionstore(RANKING_KEY, weights)
        # Keep the top of the ranking only: a page past it is not "trending".
        pipe.zremrangebyrank(RANKING_KEY, 0, -_RANKING_MAX - 1)
        pipe.pexpire(RANKING_KEY, max(1, int(settings.trending_cache_seconds * 1000)))
        await pipe.execute()


async def ranking(
    redis: Redis, settings: FeedSettings, offset: int, count: int
) -> list[tuple[uuid.UUID, float]]:
    """Entries `offset`.. of the ranking (highest first), recomputed when its cache expired."""
    if settings.trending_cache_seconds <= 0 or not await redis.exists(RANKING_KEY):
        await _rank(redis, settings)
    rows = await redis.zrange(RANKING_KEY, offset, offset + count - 1, desc=True, withscores=True)
    return [(uuid.UUID(m), float(s)) for m, s in rows]
