"""/healthz (the process answers), /readyz (its dependencies answer) and /metrics.

Exports: ReadinessCheck, check_database, check_redis, upstream_ready, health_router.
/readyz runs its checks concurrently, each within its own timeout, and answers 503 JSON
naming the failing ones while any fails, so a probe never hangs on a stalled dependency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from shared import shutdown
from shared.observability import metrics_response

ReadinessCheck = Callable[[Request], Awaitable[None]]
# A database or Redis that has not answered a trivial query in this long is not ready.
DEPENDENCY_TIMEOUT = 2.0
# An upstream's own /readyz may take DEPENDENCY_TIMEOUT to fail; give it time to say so.
UPSTREAM_TIMEOUT = DEPENDENCY_TIMEOUT + 1.0


class NotReady(Exception):
    """A dependency answered, but not ready."""


async def check_database(request: Request) -> None:
    async with asyncio.timeout(DEPENDENCY_TIMEOUT):
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))


async def check_redis(request: Request) -> None:
    async with asyncio.timeout(DEPENDENCY_TIMEOUT):
        await request.app.state.redis.ping()


def upstream_ready(name: str) -> ReadinessCheck:
    """The service `name` answers 200 on its own /readyz, asked through the app's pooled
    aiohttp session for it (``app.state.upstreams[name]``, as the gateway keeps them)."""

    async def check(request: Request) -> None:
        session: Any = request.app.state.upstreams[name]
        async with asyncio.timeout(UPSTREAM_TIMEOUT), session.get("/readyz") as response:
            if response.status != 200:
                raise NotReady(f"/readyz answered {response.status}")

    return check


async def _outcome(check: ReadinessCheck, request: Request) -> str:
    try:
        await check(request)
    except Exception as exc:  # any failure means "not ready", with the reason shown
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the service's dependencies answer")
    async def readyz(request: Request) -> JSONResponse:
        if shutdown.draining():  # red first, so load balancers stop sending
            return JSONResponse(
                {"status": "draining", "checks": {}},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        outcomes = await asyncio.gather(*(_outcome(check, request) for check in checks.values()))
        results = dict(zip(checks, outcomes, strict=True))
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
            headers=None if ready else {"Retry-After": "2"},
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    return router
