"""Feed fixtures: a ready tiny model, and the feed worker's context to run its jobs in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import ArqRedis

from services.feed.config import FeedSettings
from services.feed.deps import FeedContext
from services.feed.posts.service import FEED_QUEUE
from services.feed.posts.tasks import generate_post
from services.feed.resources import build_context, close_context
from shared.auth.service_credentials import ServiceName
from shared.jobs import create_job_pool
from tests.conftest import SERVICE_TOKENS
from tests.factories import UserSession
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    llama,
    owner,
    ready_model,
    tiny_llama_dir,
)


@pytest.fixture
async def worker_ctx(platform: Any) -> AsyncIterator[dict[str, Any]]:
    """The ctx the feed worker gives its jobs, built as its startup does."""
    settings = FeedSettings(
        **{
            **platform.common,
            "service_token": SERVICE_TOKENS[ServiceName.FEED],
            "models_hub_url": platform.service_urls["models_hub"],
            "inference_url": platform.service_urls["inference"],
        }
    )
    pool = await create_job_pool(platform.common["redis_url"])
    feed = await build_context(settings, platform.sessionmaker, jobs=pool)
    yield {"feed": feed, "redis": pool, "events_redis": platform.redis, "job_try": 1}
    await close_context(feed)


async def run_jobs(ctx: dict[str, Any]) -> list[str]:
    """Run every generation job the feed enqueued (with the arguments it enqueued them with),
    as the worker would; the queue is emptied."""
    pool: ArqRedis = ctx["redis"]
    outcomes = []
    for job in await pool.queued_jobs(queue_name=FEED_QUEUE):
        assert job.function == "generate_post"
        outcomes.append(await generate_post(ctx, *job.args, **job.kwargs))
    await pool.delete(FEED_QUEUE)
    return outcomes


def feed_of(ctx: dict[str, Any]) -> FeedContext:
    feed: FeedContext = ctx["feed"]
    return feed


async def publish(
    client: httpx.AsyncClient,
    ctx: dict[str, Any],
    user: UserSession,
    model: dict[str, Any],
    prompt: str = "Say something about foxes.",
) -> dict[str, Any]:
    """A post by `model`, generated and published."""
    response = await client.post(
        "/api/v1/posts",
        json={"model": model["ref"], "prompt": prompt, "max_tokens": 6, "temperature": 0},
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    assert await run_jobs(ctx) == ["published"]
    post = await client.get(f"/api/v1/posts/{response.json()['id']}", headers=user.headers)
    assert post.json()["status"] == "published", post.text
    return dict(post.json())


def post_id(body: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(body["id"])
