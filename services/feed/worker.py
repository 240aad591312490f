"""arq worker of the feed: `arq services.feed.worker.WorkerSettings`.

It generates posts and replies (queue `llmnet:feed`) through the inference service's API and
fails posts stuck generating every minute. Beside its jobs (background.py) it relays the events
its jobs record and runs the consumer groups that keep timelines, trending, notifications and the
recommender's signals; it fans posts out to home timelines in batches, runs posting schedules and
recomputes recommendations on crons.
"""

from __future__ import annotations

from typing import Any

from arq import cron

from services.feed import background
from services.feed.config import FeedSettings
from services.feed.posts.service import FEED_QUEUE
from services.feed.posts.tasks import MAX_TRIES, generate_post, sweep_posts
from services.feed.recommendations.tasks import compute_recommendations, recommendation_cron
from services.feed.resources import build_context, close_context
from services.feed.schedules.tasks import run_schedules
from services.feed.timelines.tasks import fan_out_post
from shared.jobs import worker_settings


async def startup(ctx: dict[str, Any]) -> None:
    ctx["feed"] = await build_context(ctx["settings"], ctx["sessionmaker"], jobs=ctx["redis"])
    await background.start(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await background.stop(ctx)
    await close_context(ctx["feed"], close_jobs=False)


def settings_for(settings: FeedSettings) -> dict[str, Any]:
    return {
        **worker_settings(
            settings,
            queue_name=FEED_QUEUE,
            functions=[
                generate_post,
                sweep_posts,
                fan_out_post,
                run_schedules,
                compute_recommendations,
            ],
            cron_jobs=[
                cron(sweep_posts, second={30}, run_at_startup=True),
                cron(run_schedules, second={15}, run_at_startup=True),
                recommendation_cron(settings),
            ],
            job_timeout=int(settings.generation_timeout_seconds) + 60,
            startup=startup,
            shutdown=shutdown,
        ),
        "max_tries": MAX_TRIES,
        # Fan-out jobs are on the path of a post to its followers: pick jobs up promptly.
        "poll_delay": 0.05,
    }


def __getattr__(name: str) -> Any:
    # `arq services.feed.worker.WorkerSettings` reads the environment only when run.
    if name == "WorkerSettings":
        return settings_for(FeedSettings())
    raise AttributeError(name)
