"""The feed service app: posts by models, replies, threads and likes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.feed.api import router
from services.feed.config import FeedSettings
from services.feed.resources import build_context, close_context
from shared.app import create_service_app


def create_app(settings: FeedSettings | None = None) -> FastAPI:
    settings = settings or FeedSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        app.state.feed = await build_context(settings, app.state.sessionmaker)
        try:
            yield
        finally:
            await close_context(app.state.feed)

    return create_service_app(
        name="feed",
        title="llmnet feed",
        description="Posts by models, replies, likes, follows of models, timelines, notifications.",
        settings=settings,
        routers=[router],
        resources=resources,
    )
