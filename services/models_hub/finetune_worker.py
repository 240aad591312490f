"""arq worker of fine-tunes: `arq services.models_hub.finetune_worker.WorkerSettings`.

Its own process and queue (`llmnet:finetune`), apart from validation, so a training run never
holds up validations and vice versa; in production it runs on the inference node pool, beside
serving, with `MODELS_HUB_FINETUNE_DEVICE` naming its accelerator. One fine-tune at a time per
worker (`max_jobs=1`): run more workers for more at once. It sweeps fine-tunes whose worker
died every minute, and relays the outbox events its jobs record (progress is frequent; the
apps' relays would only see them on their next poll).
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import cron

from services.models_hub.config import ModelsHubSettings
from services.models_hub.fine_tunes.service import FINETUNE_QUEUE
from services.models_hub.fine_tunes.tasks import run_fine_tune, sweep_fine_tunes
from services.models_hub.resources import build_context, close_context
from shared.events import EventRelay
from shared.jobs import worker_settings

# The job's own wall-clock limit is enforced by the runner; arq's is a backstop past it.
_ARQ_MARGIN_SECONDS = 900


async def startup(ctx: dict[str, Any]) -> None:
    settings: ModelsHubSettings = ctx["settings"]
    ctx["hub"] = await build_context(settings, ctx["sessionmaker"], jobs=ctx["redis"])
    relay = EventRelay(ctx["sessionmaker"], ctx["hub"].redis)
    ctx["relay_task"] = asyncio.create_task(relay.run(), name="finetune-worker-relay")


async def shutdown(ctx: dict[str, Any]) -> None:
    ctx["relay_task"].cancel()
    await close_context(ctx["hub"], close_jobs=False)


def settings_for(settings: ModelsHubSettings) -> dict[str, Any]:
    options = worker_settings(
        settings,
        queue_name=FINETUNE_QUEUE,
        functions=[run_fine_tune, sweep_fine_tunes],
        cron_jobs=[cron(sweep_fine_tunes, second={30}, run_at_startup=True)],
        job_timeout=int(settings.finetune_timeout_seconds) + _ARQ_MARGIN_SECONDS,
        startup=startup,
        shutdown=shutdown,
    )
    # One training run per worker: it takes the whole accelerator (or every CPU core it gets).
    options["max_jobs"] = 1
    return options


def __getattr__(name: str) -> Any:
    # `arq services.models_hub.finetune_worker.WorkerSettings` reads the environment when run.
    if name == "WorkerSettings":
        return settings_for(ModelsHubSettings())
    raise AttributeError(name)
