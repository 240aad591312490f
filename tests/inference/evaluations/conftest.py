"""Evaluation fixtures: the inference worker's ctx to run its jobs in-process, a second
version of a model, and the SSE parser."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq import ArqRedis
from sqlalchemy import update

from services.inference.config import InferenceSettings
from services.inference.evaluations.generator import ApiGenerator
from services.inference.evaluations.tasks import run_evaluation
from services.inference.prompt_lab.tasks import run_ab_test
from services.inference.queue import INFERENCE_QUEUE
from services.models_hub.models import Model, ModelVersion
from shared.auth.service_credentials import ServiceName
from shared.db import session_scope
from shared.jobs import create_job_pool
from shared.models_client import ModelsClient
from shared.storage import LocalStorage
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
    models = ModelsClient(settings.models_hub_url, ServiceName.INFERENCE, settings.service_token)
    yield {
        "settings": settings,
        "sessionmaker": platform.sessionmaker,
        "redis": pool,
        "generator": generator,
        "models": models,
        "job_try": 1,
    }
    await generator.aclose()
    await models.aclose()
    await pool.aclose()


async def run_jobs(ctx: dict[str, Any]) -> list[str]:
    """Run every job the inference service queued, as the worker would; the queue is emptied."""
    pool: ArqRedis = ctx["redis"]
    outcomes = []
    for job in await pool.queued_jobs(queue_name=INFERENCE_QUEUE):
        outcomes.append(await _JOBS[job.function](ctx, *job.args, **job.kwargs))
    await pool.delete(INFERENCE_QUEUE)
    return outcomes


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    yield path.read_bytes()


async def activate_new_version(platform: Any, model: dict[str, Any], folder: Path) -> str:
    """A second ready version of `model` from `folder`, made the active one; its id."""
    storage = LocalStorage(platform.common["data_dir"] / "storage")
    model_id, version_id = uuid.UUID(model["id"]), uuid.uuid4()
    prefix = f"models/{model_id}/versions/{version_id}/original"
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stored = await storage.put(f"{prefix}/{path.name}", _chunks(path))
        files.append(
            {"name": path.name, "size": stored.size, "sha256": stored.sha256, "kind": "file"}
        )
    async with session_scope(platform.sessionmaker) as session:
        owner = (await session.get(Model, model_id)).owner_id  # type: ignore[union-attr]
        session.add(
            ModelVersion(
                id=version_id,
                model_id=model_id,
                owner_id=owner,
                number=2,
                status="ready",
                format="safetensors",
                files=files,
                servable_prefix=prefix,
                servable_files=files,
            )
        )
        await session.flush()
        await session.execute(
            update(Model).where(Model.id == model_id).values(active_version_id=version_id)
        )
    return str(version_id)
