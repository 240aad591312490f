"""The gateway app: path normalisation, probes, admin-only metrics, the merged OpenAPI
document with Swagger UI and ReDoc, the web app, then the proxy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.responses import Response

from services.gateway.auth import Authenticator
from services.gateway.config import GatewaySettings
from services.gateway.docs import install_docs
from services.gateway.metrics import install_admin_metrics
from services.gateway.openapi import OpenAPICache
from services.gateway.paths import NormalPathMiddleware
from services.gateway.proxy import Proxy
from services.gateway.replicas import ReplicaSet, inference_ready
from services.gateway.routing import upstream_urls
from services.gateway.spa import install_webapp
from services.gateway.upstreams import close_upstreams, create_upstreams
from services.gateway.websockets import install_websockets
from shared.app import create_service_app
from shared.errors import LLMNetError
from shared.health import upstream_ready

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        upstreams = create_upstreams(settings)
        app.state.upstreams = upstreams  # /readyz asks each service's own /readyz
        replicas = ReplicaSet(settings, upstreams["inference"])
        app.state.replicas = replicas
        authenticator = Authenticator(settings, upstreams["accounts"], app.state.redis)
        app.state.proxy = Proxy(settings, upstreams, authenticator, app.state.redis, replicas)
        app.state.authenticator = authenticator
        app.state.openapi_cache = OpenAPICache(
            upstreams,
            ttl_seconds=settings.openapi_cache_seconds,
            origins={"inference": replicas.any_origin},
        )
        with contextlib.suppress(LLMNetError):
            await authenticator.load_keys()  # accounts may still be starting: retried lazily
        try:
            await replicas.start()
            yield
        finally:
            await replicas.stop()
            await close_upstreams(upstreams)

    app = create_service_app(
        name="gateway",
        title="llmnet",
        description="The public entry to the llmnet platform.",
        settings=settings,
        resources=resources,
        uses_database=False,
        own_docs=False,
        # Ready when Redis and every service are: the gateway alone serves nothing useful.
        # Inference: some replica passed its last readiness check (replicas.py).
        readiness={
            name: inference_ready if name == "inference" else upstream_ready(name)
            for name in upstream_urls(settings)
        },
    )
    install_admin_metrics(app)  # the gateway's port is public: its /metrics is not
    # Innermost (user_middleware runs first to last): inside the shared observability
    # middleware, so refused paths get a request id, an access-log line and metrics too.
    app.user_middleware.append(Middleware(NormalPathMiddleware))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        document: dict[str, Any] = await request.app.state.openapi_cache.document()
        return JSONResponse(document)

    install_docs(app)  # Swagger UI and ReDoc from local assets, before the catch-all
    install_websockets(app)  # the feed's live socket (/api/v1/feed/ws)
    install_webapp(app)  # the web app at / and its files under /app

    @app.api_route("/{path:path}", methods=_METHODS, include_in_schema=False)
    async def proxy(request: Request) -> Response:
        proxy: Proxy = request.app.state.proxy
        return await proxy.handle(request)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=_METHODS,
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    return app
