"""An arq worker for the graceful-shutdown test, run in its own process: `nap` marks when it
starts and ends (in Redis), sleeping the first time it runs and not when run again."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from shared.jobs import worker_settings
from shared.settings import CommonSettings


async def nap(ctx: dict[str, Any], key: str, seconds: float) -> None:
    redis = ctx["redis"]
    await redis.rpush(f"{key}:started", ctx["job_try"])
    if ctx["job_try"] == 1:
        await asyncio.sleep(seconds)
    await redis.rpush(f"{key}:done", ctx["job_try"])


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        settings = CommonSettings()  # type: ignore[call-arg]
        return worker_settings(settings, queue_name=os.environ["TEST_QUEUE"], functions=[nap])
    raise AttributeError(name)
