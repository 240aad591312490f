"""Evaluation fixtures: the inference worker's ctx to run its jobs in-process, and the SSE
parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import ArqRedis

from services.inference.config import InferenceSettings
from services.inference.evaluations.generator import ApiGenerator
from services.inference.evaluations.tasks import run_evaluation
from services.inference.prompt_lab.tasks import run_ab_test
from services.inference.queue import INFERENCE_QUEUE
from shared.auth.service_credentials import ServiceName
from shared.jobs import create_job_pool
from tests.conftest import SERVICE_TOKENS
from tests.inference.messages.conftest import parse_events, stream_events  # noqa: F401

_JOBS = {"run_evaluation": run_evaluation, "run_ab_test": run_ab_test}


@pytest.fixture
async def worker_ctx(platform: Any) -> AsyncIterator[dict[str, Any]]:
    """The ctx the inference worker gives its jobs, built as its startup does."""
    settings = InferenceSettings(
        **{
            **platform.common,
            "service_token": SERVICE_TOKENS[ServiceName.INFERENCE],
            "models_hub_url": platform.service_urls["models_hub"],
            "inference_url": platform.service_urls["inference"],
            "evaluation_concurrency": 2,
        }
    )
    pool = await create_job_pool(platform.common["redis_url"])
    generator = ApiGenerator(
        settings.inference_url, settings.service_token, timeout=settings.provider_timeout_seconds
    )
    yield {
        "settings": settings,
        "sessionmaker": platform.sessionmaker,
        "redis": pool,
        "generator": generator,
        "job_try": 1,
    }
    await generator.aclose()
    await pool.aclose()


async def run_jobs(ctx: dict[str, Any]) -> list[str]:
    """Run every job the inference service queued, as the worker would; the queue is emptied."""
    pool: ArqRedis = ctx["redis"]
    outcomes = []
    for job in await pool.queued_jobs(queue_name=INFERENCE_QUEUE):
        outcomes.append(await _JOBS[job.function](ctx, *job.args, **job.kwargs))
    await pool.delete(INFERENCE_QUEUE)
    return outcomes
