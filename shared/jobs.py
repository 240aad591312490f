"""arq wiring shared by every service's worker and app.

Exports: redis_settings, create_job_pool, enqueue_after_commit, worker_settings.
Jobs are enqueued only after the request's transaction commits, so a job never looks for rows
that were rolled back; jobs take ids, open their own session and tolerate missing rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.cron import CronJob
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import after_commit, create_engine, create_sessionmaker
from shared.observability import configure_logging
from shared.settings import CommonSettings

WorkerHook = Callable[[dict[str, Any]], Awaitable[None]]


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def create_job_pool(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))


def enqueue_after_commit(
    session: AsyncSession, pool: ArqRedis, function: str, *args: Any, **kwargs: Any
) -> None:
    async def _enqueue() -> None:
        await pool.enqueue_job(function, *args, **kwargs)

    after_commit(session, _enqueue)


def worker_settings(
    settings: CommonSettings,
    *,
    queue_name: str,
    functions: Sequence[Callable[..., Awaitable[Any]]] = (),
    cron_jobs: Sequence[CronJob] = (),
    job_timeout: int = 300,
    startup: WorkerHook | None = None,
    shutdown: WorkerHook | None = None,
) -> dict[str, Any]:
    """Keyword arguments for an arq worker: its ctx carries `settings`, `sessionmaker` and
    `redis` (arq's pool); `startup`/`shutdown` add a service's own resources."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        configure_logging(settings.log_level, settings.log_json)
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        ctx["settings"] = settings
        ctx["engine"] = engine
        ctx["sessionmaker"] = create_sessionmaker(engine)
        if startup is not None:
            await startup(ctx)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if shutdown is not None:
            await shutdown(ctx)
        await ctx["engine"].dispose()

    return {
        "functions": list(functions),
        "cron_jobs": list(cron_jobs),
        "queue_name": queue_name,
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_timeout": job_timeout,
        "max_tries": 5,
    }
