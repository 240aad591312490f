"""arq wiring shared by every service's worker and app.

Exports: worker_redis_settings, create_job_pool, enqueue_after_commit, worker_settings.
Jobs are enqueued only after the request's transaction commits, so a job never looks for rows
that were rolled back; jobs take ids, open their own session and tolerate missing rows.

Workers ride out Redis outages: their connection retries every command (reconnecting with a
capped backoff) until Redis answers again, where arq on its own would exit at the first
connection error. Apps enqueue through a pool that fails fast instead, since enqueueing runs
before the response is sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from arq import ArqRedis
from arq.connections import RedisSettings
from arq.cron import CronJob
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import after_commit, create_engine, create_sessionmaker
from shared.observability import configure_logging
from shared.redis_client import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS
from shared.settings import CommonSettings

WorkerHook = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

logger = logging.getLogger("llmnet.jobs")

# A worker reconnects at most this often while Redis is away (and so is back this soon).
RECONNECT_BACKOFF_CAP_SECONDS = 1.0


class PatientRetry(Retry):
    """Retry forever, with a capped exponential backoff; say when Redis goes and comes back."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(ExponentialBackoff(cap=RECONNECT_BACKOFF_CAP_SECONDS, base=0.05), -1)

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        failed = False

        async def on_failure(error: RedisError) -> None:
            nonlocal failed
            if not failed:
                failed = True
                logger.warning("Redis unavailable (%s); waiting for it to come back", error)
            await fail(error)

        result = await super().call_with_retry(do, on_failure)
        if failed:
            logger.info("Redis answers again")
        return result


def worker_redis_settings(url: str) -> RedisSettings:
    """arq settings whose connections wait out a Redis outage instead of failing."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = int(CONNECT_TIMEOUT_SECONDS)
    settings.retry = PatientRetry()
    # OSError covers refused and reset sockets while (re)connecting, which redis-py would
    # otherwise raise straight away; the redis errors cover commands cut off mid-way.
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    return settings


async def create_job_pool(url: str) -> ArqRedis:
    """A lazily connected pool for enqueueing from an app: same timeouts as every request-path
    Redis client and no retries, so an outage fails the enqueue fast (the caller logs it)."""
    pool = ArqRedis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    return cast(ArqRedis, pool)


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
        # On SIGTERM: no new jobs, running ones get the grace to finish; then they are
        # cancelled and re-queued (every job is written to be run again).
        "job_completion_wait": math.ceil(settings.shutdown_grace_seconds),
        "redis_settings": worker_redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_timeout": job_timeout,
        "max_tries": 5,
    }
