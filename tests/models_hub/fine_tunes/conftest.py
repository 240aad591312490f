"""Fine-tune fixtures: a tiny base model, memorisable datasets, and the real fine-tune worker."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.worker import Worker

from tests.conftest import platform_hub_settings
from tests.factories import UserSession
from tests.inference.conftest import ready_model
from tests.models_hub.conftest import developer
from tests.models_hub.tiny_models import build_tiny_llama

QUESTION = "What is the secret word?"
ANSWER = "The secret word is pineapple."


def chat_line(question: str = QUESTION, answer: str = ANSWER) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def jsonl(rows: list[Any]) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


MEMORISE = jsonl([chat_line()] * 4)


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Output-head rows long enough for LoRA adapters alone to memorise (see build_tiny_llama).
    return build_tiny_llama(tmp_path_factory.mktemp("ft-base") / "model", initializer_range=0.3)


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> UserSession:
    return await developer(client, "tuner")


@pytest.fixture
async def base(platform, owner, base_model_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return await ready_model(platform, owner, base_model_dir, slug="base", visibility="private")


async def start_fine_tune(
    client: httpx.AsyncClient,
    user: UserSession,
    model_id: str,
    training: bytes = MEMORISE,
    *,
    validation: bytes | None = None,
    **params: Any,
) -> httpx.Response:
    files = [("training_file", ("train.jsonl", training, "application/jsonl"))]
    if validation is not None:
        files.append(("validation_file", ("valid.jsonl", validation, "application/jsonl")))
    data = {
        "method": "full",
        "epochs": "12",
        "learning_rate": "0.01",
        "batch_size": "4",
        "max_seq_length": "64",
        **{k: str(v) for k, v in params.items()},
    }
    return await client.post(
        f"/api/v1/models/{model_id}/fine-tunes", files=files, data=data, headers=user.headers
    )


def fine_tune_settings(platform: Any, **overrides: Any) -> Any:
    return platform_hub_settings(
        platform.common,
        finetune_progress_interval_seconds=0,
        finetune_heartbeat_seconds=0.5,
        finetune_threads=1,
        **overrides,
    )


@pytest.fixture
def run_fine_tunes(platform) -> Callable[[], Awaitable[int]]:  # type: ignore[no-untyped-def]
    """Run the real fine-tune worker until its queue is empty; returns jobs completed."""

    async def drain() -> int:
        from services.models_hub.finetune_worker import settings_for

        options = settings_for(fine_tune_settings(platform))
        options.pop("cron_jobs")  # the sweeper runs when a test calls it
        worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        return int(worker.jobs_complete)

    return drain


def parse_sse(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events
