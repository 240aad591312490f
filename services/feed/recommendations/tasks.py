"""The recommendations job (arq, feed worker cron): read the signals, rank, store in Redis.

Tests and operators run it directly with `compute_recommendations(ctx)`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq import cron
from arq.cron import CronJob

from services.feed.config import FeedSettings
from services.feed.deps import FeedContext
from services.feed.recommendations import repository, store
from services.feed.recommendations.engine import recommend
from shared.db import session_scope, utcnow


async def compute_recommendations(ctx: dict[str, Any]) -> dict[str, Any]:
    """`ctx` carries `feed` and `events_redis` (decoded responses), as in the worker."""
    feed: FeedContext = ctx["feed"]
    settings = feed.settings
    started = time.monotonic()
    async with session_scope(feed.sessionmaker) as session:
        signals = await repository.load_signals(session)
    # The maths is CPU-bound: off the event loop, so the worker's consumers keep running.
    result = await asyncio.to_thread(
        recommend,
        signals,
        per_list=settings.recommendations_per_list,
        popularity_weight=settings.recommendations_popularity_weight,
    )
    ttl = max(3 * settings.recommendations_interval_minutes * 60, 3600)
    await store.save(ctx["events_redis"], result, ttl=ttl, computed_at=utcnow().isoformat())
    return {
        "users": len(result.for_user),
        "similar": len(result.similar),
        "seconds": round(time.monotonic() - started, 3),
    }


def recommendation_cron(settings: FeedSettings) -> CronJob:
    every = settings.recommendations_interval_minutes
    return cron(
        compute_recommendations,
        minute=set(range(0, 60, every)),
        second={45},
        run_at_startup=True,
        unique=True,
    )
