"""Run only by test_ci_servers.py, in a pytest of its own: what the suite's servers are.

Not collected by the suite itself (the name does not start with test_).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ADMIN_DATABASE_URL, REDIS_URL, TEST_SERVERS


async def test_the_suite_has_a_migrated_database_and_redis(
    engine: AsyncEngine, database_url: str
) -> None:
    async with engine.connect() as connection:
        tables = await connection.scalar(
            text("SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'")
        )
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await redis.ping()
    finally:
        await redis.aclose()
    Path(os.environ["FALLBACK_PROBE_OUT"]).write_text(
        json.dumps(
            {
                "admin_database_url": ADMIN_DATABASE_URL,
                "database_url": database_url,
                "redis_url": REDIS_URL,
                "started": TEST_SERVERS.started,
                "users_table": tables,
            }
        )
    )
