"""Client fixtures: the Python client and the `llmnet` user commands against the real
platform (the suite's gateway), plus the workers' contexts to run queued jobs in-process.

The platform is served on this test's event loop, so blocking code (the sync client, a
pseudo-terminal) runs in a thread (`asyncio.to_thread`) and commands run as subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq import ArqRedis
from llmnet_client import AsyncClient

from services.inference.config import InferenceSettings
from services.inference.evaluations.generator import ApiGenerator
from services.inference.evaluations.tasks import run_evaluation
from services.inference.queue import INFERENCE_QUEUE
from shared.auth.service_credentials import ServiceName
from shared.jobs import create_job_pool
from shared.models_client import ModelsClient
from tests.conftest import SERVICE_TOKENS
from tests.factories import UserSession
from tests.feed.conftest import run_jobs as run_feed_jobs
from tests.feed.conftest import worker_ctx as worker_ctx
from tests.inference.conftest import (  # noqa: F401  (fixtures)
    llama,
    owner,
    ready_model,
    tiny_llama_dir,
)
from tests.models_hub.conftest import hub_limits, hub_settings, run_jobs  # noqa: F401

LLMNET = str(Path(sys.executable).parent / "llmnet")

__all__ = ["LLMNET", "CliResult", "client_for", "run_feed_jobs", "servable_files"]


def client_for(platform: Any, user: UserSession, **options: Any) -> AsyncClient:
    return AsyncClient(
        platform.gateway_url,
        access_token=user.access_token,
        refresh_token=user.refresh_token,
        **options,
    )


@pytest.fixture
async def api(platform: Any, owner: UserSession) -> AsyncIterator[AsyncClient]:  # noqa: F811
    """The owner's async client, logged in with tokens."""
    async with client_for(platform, owner) as client:
        yield client


@pytest.fixture
async def inference_ctx(platform: Any) -> AsyncIterator[dict[str, Any]]:
    """The inference worker's ctx, to run evaluation jobs in-process."""
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


async def servable_files(platform: Any, model: dict[str, Any]) -> None:
    """Give a fixture-made version's files the kinds validation records (the versions API
    reads them back)."""
    from sqlalchemy import select

    from services.models_hub.models import ModelVersion
    from shared.db import session_scope

    kinds = {".safetensors": "safetensors", ".json": "json"}
    async with session_scope(platform.sessionmaker) as session:
        version = await session.scalar(
            select(ModelVersion).where(ModelVersion.id == uuid.UUID(model["version_id"]))
        )
        assert version is not None
        version.files = [
            {**f, "kind": kinds.get(Path(f["name"]).suffix, "text")} for f in version.files
        ]


async def run_evaluations(ctx: dict[str, Any]) -> list[str]:
    pool: ArqRedis = ctx["redis"]
    outcomes = []
    for job in await pool.queued_jobs(queue_name=INFERENCE_QUEUE):
        assert job.function == "run_evaluation"
        outcomes.append(await run_evaluation(ctx, *job.args, **job.kwargs))
    await pool.delete(INFERENCE_QUEUE)
    return outcomes


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_env(platform: Any, tmp_path: Path) -> dict[str, str]:
    """The environment of an `llmnet` user command: this platform, a config dir of its own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LLMNET_API_KEY", "LLMNET_URL", "XDG_CONFIG_HOME")
    }
    env.update(
        LLMNET_URL=platform.gateway_url,
        LLMNET_CONFIG_DIR=str(tmp_path / "config"),
        COLUMNS="120",
        TERM="xterm-256color",
    )
    return env


def live_ctrl_c() -> None:
    """For a child the test sends Ctrl-C (SIGINT) to: a suite started in the background by a
    shell runs with SIGINT ignored, which children inherit, and Python then installs no
    handler for it; the child starts with the default again, as under a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def llmnet(
    env: dict[str, str], *args: str, stdin: str | None = None, seconds: float = 60
) -> CliResult:
    """Run `llmnet ARGS` to its end (without a terminal)."""
    process = await asyncio.create_subprocess_exec(
        LLMNET,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(seconds):
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())
