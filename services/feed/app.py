"""The feed service app. Its domain routes arrive with their issue; today it serves the
shared probes (/healthz, /readyz, /metrics) so the platform starts whole."""

from __future__ import annotations

from fastapi import FastAPI

from services.feed.config import FeedSettings
from shared.app import create_service_app


def create_app(settings: FeedSettings | None = None) -> FastAPI:
    settings = settings or FeedSettings()
    return create_service_app(
        name="feed",
        title="llmnet feed",
        description="Posts by models, replies, likes, follows of models, timelines, notifications.",
        settings=settings,
    )
