"""arq worker of the model hub: `arq services.models_hub.worker.WorkerSettings`.

It validates uploads (queue `llmnet:validation`; in production it runs on the inference
node pool, where models load the way they will be served), sweeps stale versions and
expired upload sessions every minute, and consumes `model.usage` events into the models'
statistics.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import cron

from services.models_hub.config import ModelsHubSettings
from services.models_hub.fine_tunes.tasks import sweep_fine_tunes
from services.models_hub.resources import build_context, close_context
from services.models_hub.usage.consumer import usage_consumer
from services.models_hub.usage.service import usage_service
from services.models_hub.versions.service import VALIDATION_QUEUE
from services.models_hub.versions.sessions.service import upload_session_service
from services.models_hub.versions.tasks import sweep_versions, validate_version
from shared.db import session_scope
from shared.jobs import worker_settings
from shared.redis_client import create_redis


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    result = await sweep_versions(ctx)
    # Upload sessions past their expiry (or of deleted models) close; their parts are removed.
    result["upload_sessions_expired"] = await upload_session_service.sweep(ctx["hub"])
    # Also here: fine-tunes whose worker died end even where no fine-tune worker runs now.
    swept = await sweep_fine_tunes(ctx)
    result["fine_tunes_failed"] = swept["failed"]
    async with session_scope(ctx["sessionmaker"]) as session:
        result["pruned_samples"] = await usage_service.prune_samples(session)
    return result


async def startup(ctx: dict[str, Any]) -> None:
    settings: ModelsHubSettings = ctx["settings"]
    ctx["hub"] = await build_context(settings, ctx["sessionmaker"], jobs=ctx["redis"])
    ctx["events_redis"] = create_redis(settings.redis_url)
    ctx["usage_consumer"] = usage_consumer(ctx)
    ctx["usage_task"] = asyncio.create_task(ctx["usage_consumer"].run(), name="usage-consumer")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["usage_consumer"].stop()
    if not ctx["usage_task"].done():
        ctx["usage_task"].cancel()  # best effort; awaiting it could hang (see EventConsumer)
    await ctx["events_redis"].aclose()
    await close_context(ctx["hub"], close_jobs=False)


def settings_for(settings: ModelsHubSettings) -> dict[str, Any]:
    return worker_settings(
        settings,
        queue_name=VALIDATION_QUEUE,
        functions=[validate_version, sweep],
        cron_jobs=[cron(sweep, second={0}, run_at_startup=True)],
        job_timeout=int(settings.validation_timeout_seconds) + 600,
        startup=startup,
        shutdown=shutdown,
    )


def __getattr__(name: str) -> Any:
    # `arq services.models_hub.worker.WorkerSettings` reads the environment only when run.
    if name == "WorkerSettings":
        return settings_for(ModelsHubSettings())
    raise AttributeError(name)
