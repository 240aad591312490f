"""The inference service app: the engine registry, the OpenAI-compatible API, the ledger."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.inference import metrics
from services.inference.api import router
from services.inference.config import InferenceSettings
from services.inference.deps import InferenceContext
from services.inference.engine import ModelRegistry
from services.inference.messages.generation import Generations
from services.inference.messages.schemas import MessageDelta, MessageStart
from services.inference.openai.schemas import ChatCompletionChunk, TextCompletion
from shared.accounts_client import AccountsClient
from shared.app import create_service_app
from shared.auth.service_credentials import ServiceName
from shared.errors import OpenAIErrorBody
from shared.fields import document_bounds
from shared.jobs import create_job_pool
from shared.models_client import ModelsClient
from shared.sse import document_event_payloads
from shared.storage.factory import create_storage


async def _export_gauges(registry: ModelRegistry) -> None:
    while True:
        stats = registry.stats()
        engines = stats["models"].values()
        metrics.LOADED_MODELS.set(stats["loaded_models"])
        metrics.MEMORY_BYTES.set(stats["bytes_in_use"])
        metrics.BATCH_SIZE.set(sum(e.get("running", 0) for e in engines))
        metrics.QUEUE_DEPTH.set(sum(e.get("waiting", 0) for e in engines))
        metrics.export_engine_configs(stats["models"])
        await asyncio.sleep(1)


def create_app(settings: InferenceSettings | None = None) -> FastAPI:
    settings = settings or InferenceSettings()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        storage = create_storage(settings)
        registry = ModelRegistry(
            storage,
            settings.data_dir / settings.cache_dir_name,
            device=settings.device,
            dtype=settings.dtype,
            memory_budget_bytes=settings.memory_budget_bytes,
            engine_options=settings.engine_options(),
        )
        context = InferenceContext(
            settings=settings,
            registry=registry,
            models=ModelsClient(
                settings.models_hub_url, ServiceName.INFERENCE, settings.service_token
            ),
            redis=app.state.redis,
            sessionmaker=app.state.sessionmaker,
            # Redirects could lead past the outbound URL check: never followed.
            remote=httpx.AsyncClient(
                timeout=httpx.Timeout(settings.provider_timeout_seconds, connect=10),
                follow_redirects=False,
                trust_env=False,
            ),
            accounts=AccountsClient(
                settings.accounts_url, ServiceName.INFERENCE, settings.service_token
            ),
            storage=storage,
            generations=Generations(),
            jobs=await create_job_pool(settings.redis_url),
        )
        app.state.inference = context
        gauges = asyncio.create_task(_export_gauges(registry), name="inference-gauges")
        try:
            yield
        finally:
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            await context.generations.close()
            await registry.close()
            await context.models.aclose()
            await context.remote.aclose()
            await context.accounts.aclose()
            await context.jobs.aclose()

    app = create_service_app(
        name="inference",
        title="llmnet inference",
        description="Model runtime and the OpenAI-compatible API.",
        settings=settings,
        routers=[router],
        resources=resources,
    )
    limit = {"maximum": settings.max_tokens_limit}
    document_bounds(
        app,
        {
            (request, field): limit
            for request in ("ChatCompletionRequest", "CompletionRequest")
            for field in ("max_tokens", "max_completion_tokens")
        },
    )
    # Conversations' sampling parameters: the same service limit (a model may allow less).
    document_bounds(app, {("SamplingParameters", "max_tokens"): limit})
    # Evaluations' and the prompt lab's limits, from settings (checked by their services).
    sample_limit = {"maximum": settings.evaluation_max_tokens}
    prompt_limit = {"maxLength": settings.prompt_lab_max_chars}
    document_bounds(
        app,
        {
            ("Sampling", "max_tokens"): sample_limit,
            ("LabSampling", "max_tokens"): sample_limit,
            ("EvaluationCreate", "repeats"): {"maximum": settings.evaluation_max_repeats},
            ("EvaluationCreate", "heldout_text"): {
                "maxLength": settings.evaluation_heldout_max_chars
            },
            ("AnalyzeRequest", "prompt"): prompt_limit,
            ("RewriteRequest", "prompt"): prompt_limit,
            ("ABCreate", "original"): prompt_limit,
            ("ABCreate", "rewrite"): prompt_limit,
            ("ABCreate", "samples"): {"maximum": settings.prompt_lab_max_samples},
            ("ABCreate", "models"): {"maxItems": settings.prompt_lab_max_models},
        },
    )
    # What the /v1 streams carry (their routes name these in `x-event-data`).
    document_event_payloads(app, ChatCompletionChunk, TextCompletion, OpenAIErrorBody)
    document_event_payloads(app, MessageStart, MessageDelta)  # conversation answers' events
    return app
