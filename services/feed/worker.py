"""arq worker of the feed: `arq services.feed.worker.WorkerSettings`.

It generates posts and replies (queue `llmnet:feed`) through the inference service's API and
fails posts stuck generating every minute.
"""

from __future__ import annotations

from typing import Any

from arq import cron

from services.feed.config import FeedSettings
from services.feed.posts.service import FEED_QUEUE
from services.feed.posts.tasks import MAX_TRIES, generate_post, sweep_posts
from services.feed.resources import build_context, close_context
from shared.jobs import worker_settings


async def startup(ctx: dict[str, Any]) -> None:
    ctx["feed"] = await build_context(ctx["settings"], ctx["sessionmaker"], jobs=ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    await close_context(ctx["feed"], close_jobs=False)


def settings_for(settings: FeedSettings) -> dict[str, Any]:
    return {
        **worker_settings(
            settings,
            queue_name=FEED_QUEUE,
            functions=[generate_post, sweep_posts],
            cron_jobs=[cron(sweep_posts, second={30}, run_at_startup=True)],
            job_timeout=int(settings.generation_timeout_seconds) + 60,
            startup=startup,
            shutdown=shutdown,
        ),
        "max_tries": MAX_TRIES,
    }


def __getattr__(name: str) -> Any:
    # `arq services.feed.worker.WorkerSettings` reads the environment only when run.
    if name == "WorkerSettings":
        return settings_for(FeedSettings())
    raise AttributeError(name)
