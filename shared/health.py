"""/healthz (the process answers), /readyz (its dependencies answer) and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from shared.observability import metrics_response

ReadinessCheck = Callable[[Request], Awaitable[None]]
_CHECK_TIMEOUT = 2.0


async def check_database(request: Request) -> None:
    async with request.app.state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis(request: Request) -> None:
    await request.app.state.redis.ping()


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the service's dependencies answer")
    async def readyz(request: Request) -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(request), _CHECK_TIMEOUT)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", with the reason shown
                results[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    return router
