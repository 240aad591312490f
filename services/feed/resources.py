"""Building the feed's per-process resources (shared by the app and the worker)."""

from __future__ import annotations

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.feed.config import FeedSettings
from services.feed.deps import FeedContext
from services.feed.posts.inference import InferenceClient
from shared.auth.service_credentials import ServiceName
from shared.jobs import create_job_pool
from shared.models_client import ModelsClient


async def build_context(
    settings: FeedSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    jobs: ArqRedis | None = None,
) -> FeedContext:
    return FeedContext(
        settings=settings,
        models=ModelsClient(settings.models_hub_url, ServiceName.FEED, settings.service_token),
        inference=InferenceClient(
            settings.inference_url,
            settings.service_token,
            timeout=settings.generation_timeout_seconds,
        ),
        jobs=jobs or await create_job_pool(settings.redis_url),
        sessionmaker=sessionmaker,
    )


async def close_context(context: FeedContext, *, close_jobs: bool = True) -> None:
    await context.models.aclose()
    await context.inference.aclose()
    if close_jobs:
        await context.jobs.aclose()
