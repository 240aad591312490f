"""The app factory every service uses: one lifespan, one error shape, one set of probes.

`create_service_app` builds the FastAPI app with the shared pieces (logging, request ids,
metrics, error handlers, /healthz, /readyz, /metrics) and, for services with a database, the
engine, sessionmaker, Redis client and outbox relay on `app.state`. Service-specific resources
come from the `resources` context manager, entered after the shared ones and left before them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI

from shared import heap, shutdown
from shared.db import create_engine, create_sessionmaker
from shared.errors import ERROR_RESPONSES, install_error_handlers
from shared.events import EventRelay
from shared.health import ReadinessCheck, check_database, check_redis, health_router
from shared.observability import ObservabilityMiddleware, configure_logging
from shared.redis_client import create_redis
from shared.settings import CommonSettings

Resources = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def _no_resources(_: FastAPI) -> AsyncIterator[None]:
    yield


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: CommonSettings,
    routers: Sequence[APIRouter] = (),
    resources: Resources = _no_resources,
    uses_database: bool = True,
    own_docs: bool = True,
    readiness: Mapping[str, ReadinessCheck] | None = None,
) -> FastAPI:
    """`readiness` adds checks to /readyz beside Redis and, with `uses_database`, PostgreSQL."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json)
        shutdown.install(settings.shutdown_drain_seconds, settings.shutdown_grace_seconds)
        app.state.redis = create_redis(settings.redis_url)
        relay_task: asyncio.Task[None] | None = None
        if uses_database:
            app.state.engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
            app.state.sessionmaker = create_sessionmaker(app.state.engine)
            relay_task = asyncio.create_task(
                EventRelay(app.state.sessionmaker, app.state.redis).run(), name="event-relay"
            )
        try:
            async with resources(app):
                heap.settle()
                yield
        finally:
            heap.thaw()
            if relay_task is not None:
                relay_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay_task
                await app.state.engine.dispose()
            await app.state.redis.aclose()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        # The gateway serves the platform's merged document in place of its own.
        openapi_url="/openapi.json" if own_docs else None,
        docs_url="/docs" if own_docs else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service_name = name
    checks: dict[str, ReadinessCheck] = {"redis": check_redis}
    if uses_database:
        checks["database"] = check_database
    checks.update(readiness or {})
    app.include_router(health_router(checks))
    for router in routers:
        app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware, service=name)
    return app
