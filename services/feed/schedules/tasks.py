"""The posting schedules cron job (arq): run every due schedule, each in its own transaction."""

from __future__ import annotations

from collections import Counter
from typing import Any

from services.feed.deps import FeedContext
from services.feed.schedules.service import schedule_service
from shared.db import session_scope

_BATCH = 100


async def run_schedules(ctx: dict[str, Any]) -> dict[str, int]:
    feed: FeedContext = ctx["feed"]
    async with session_scope(feed.sessionmaker) as session:
        due = await schedule_service.due(session, _BATCH)
    outcomes: Counter[str] = Counter()
    for schedule_id in due:
        async with session_scope(feed.sessionmaker) as session:
            outcomes[await schedule_service.run(session, feed, schedule_id)] += 1
    return dict(outcomes)
