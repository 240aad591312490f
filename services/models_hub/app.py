"""The model hub app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.models_hub.api import router
from services.models_hub.config import ModelsHubSettings
from services.models_hub.fine_tunes.schemas import FineTuneEvent
from services.models_hub.resources import build_context, close_context
from shared.app import create_service_app
from shared.sse import document_event_payloads


def create_app(settings: ModelsHubSettings | None = None) -> FastAPI:
    settings = settings or ModelsHubSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.hub = await build_context(settings, app.state.sessionmaker)
        try:
            yield
        finally:
            await close_context(app.state.hub)

    app = create_service_app(
        name="models_hub",
        title="llmnet model hub",
        description="Models, versions, uploads, validation, providers, fine-tunes, likes.",
        settings=settings,
        routers=[router],
        resources=resources,
    )
    document_event_payloads(app, FineTuneEvent)
    return app
