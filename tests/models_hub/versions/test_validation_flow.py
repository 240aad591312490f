"""Upload → validation job (real arq worker, sandboxed child) → ready or failed, end to end."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from safetensors import safe_open
from sqlalchemy import select, update

from services.models_hub.models import ModelVersion
from shared.db import session_scope, utcnow
from tests.models_hub.conftest import create_model, developer, folder_files, upload
from tests.models_hub.tiny_models import build_tiny_gguf, build_tiny_llama

# Each validation starts a sandboxed interpreter that imports torch and loads a model.
pytestmark = pytest.mark.timeout(300)


async def _version(client, model_id, version_id):
    return (await client.get(f"/api/v1/models/{model_id}/versions/{version_id}")).json()


async def test_tiny_llama_validates_and_goes_live(client, platform, run_jobs, tmp_path):
    dev = await developer(client)
    model = await create_model(client, dev)
    folder = build_tiny_llama(tmp_path / "llama")
    created = await upload(client, dev, model["id"], folder_files(folder))
    assert created.status_code == 202, created.text

    assert await run_jobs() >= 1
    version = await _version(client, model["id"], created.json()["id"])
    assert version["status"] == "ready", version["error"]
    details = version["details"]
    assert details["architecture"] == "LlamaForCausalLM"
    assert details["parameter_count"] > 0
    assert details["vocab_size"] > 0
    assert details["has_chat_template"] is True
    assert details["tokens_per_second"] > 0
    assert version["is_active"] is True  # the first ready version goes live

    model_now = (await client.get(f"/api/v1/models/{model['id']}")).json()
    assert model_now["status"] == "ready"
    assert model_now["active_version"]["id"] == version["id"]

    # The next ready version waits for an explicit activation; rolling back is the same call.
    second = await upload(
        client, dev, model["id"], folder_files(build_tiny_llama(tmp_path / "llama2", seed=1))
    )
    await run_jobs()
    second_version = await _version(client, model["id"], second.json()["id"])
    assert second_version["status"] == "ready"
    assert second_version["is_active"] is False
    base = f"/api/v1/models/{model['id']}/versions"
    activated = await client.post(f"{base}/{second_version['id']}/activate", headers=dev.headers)
    assert activated.json()["is_active"] is True
    refused = await client.delete(f"{base}/{second_version['id']}", headers=dev.headers)
    assert refused.status_code == 409
    rolled_back = await client.post(f"{base}/{version['id']}/activate", headers=dev.headers)
    assert rolled_back.json()["is_active"] is True
    assert (
        await client.delete(f"{base}/{second_version['id']}", headers=dev.headers)
    ).status_code == 204

    events = await platform.redis.xrange("llmnet:events:model")
    validated = [
        json.loads(f["payload"]) for _, f in events if f["type"] == "model.version.validated"
    ]
    assert {e["version_id"] for e in validated} == {version["id"], second_version["id"]}


async def test_gguf_upload_is_converted_to_safetensors(client, platform, run_jobs, tmp_path):
    dev = await developer(client)
    model = await create_model(client, dev)
    gguf = build_tiny_gguf(tmp_path / "tiny.gguf")
    created = await upload(
        client,
        dev,
        model["id"],
        [("files", ("tiny.gguf", gguf.read_bytes(), "application/octet-stream"))],
    )
    assert created.status_code == 202
    await run_jobs()
    version = await _version(client, model["id"], created.json()["id"])
    assert version["status"] == "ready", version["error"]
    assert version["details"]["converted"] is True

    # The servable artifact is safetensors + JSON; the GGUF stays downloadable as uploaded.
    async with platform.sessionmaker() as session:
        stored = await session.get(ModelVersion, version["id"])
    servable = platform.common["data_dir"] / "storage" / stored.servable_prefix
    names = sorted(p.name for p in servable.iterdir())
    assert "model.safetensors" in names
    assert "config.json" in names
    assert json.loads((servable / "config.json").read_text())["architectures"]
    with safe_open(servable / "model.safetensors", "pt") as weights:
        assert len(list(weights.keys())) > 0
    original = await client.get(
        f"/api/v1/models/{model['id']}/versions/{version['id']}/files/tiny.gguf"
    )
    assert original.content == gguf.read_bytes()


async def test_a_model_that_does_not_load_fails_with_a_reason(client, platform, run_jobs, tmp_path):
    dev = await developer(client)
    model = await create_model(client, dev)
    folder = build_tiny_llama(tmp_path / "llama")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "no-such-architecture"
    (folder / "config.json").write_text(json.dumps(config))
    created = await upload(client, dev, model["id"], folder_files(folder))
    assert created.status_code == 202
    await run_jobs()
    version = await _version(client, model["id"], created.json()["id"])
    assert version["status"] == "failed"
    assert "no-such-architecture" in version["error"]
    assert (await client.get(f"/api/v1/models/{model['id']}")).json()["status"] == "failed"
    events = await platform.redis.xrange("llmnet:events:model")
    assert "model.version.failed" in [f["type"] for _, f in events]


async def test_a_validation_whose_worker_died_is_retried_then_failed(
    client, platform, run_jobs, hub_settings, tmp_path
):
    """Crash safety: a version left `validating` by a dead worker never stays there."""
    from services.models_hub.resources import build_context, close_context
    from services.models_hub.versions.tasks import sweep_versions

    dev = await developer(client)
    model = await create_model(client, dev)
    created = await upload(
        client, dev, model["id"], folder_files(build_tiny_llama(tmp_path / "llama"))
    )
    version_id = created.json()["id"]
    # A worker claimed the job (lease and attempt recorded), then died: its job is gone.
    await platform.redis.flushdb()
    stale = utcnow() - timedelta(hours=1)
    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version_id)
            .values(attempts=1, validation_started_at=stale)
        )
    context = await build_context(hub_settings, platform.sessionmaker)
    try:
        assert await sweep_versions({"hub": context}) == {"retried": 1, "failed": 0}
        await run_jobs()
        assert (await _version(client, model["id"], version_id))["status"] == "ready"

        # Out of attempts: the sweeper fails it with a reason instead of retrying forever.
        async with session_scope(platform.sessionmaker) as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(status="validating", attempts=3, validation_started_at=stale)
            )
        assert await sweep_versions({"hub": context}) == {"retried": 0, "failed": 1}
    finally:
        await close_context(context)
    version = await _version(client, model["id"], version_id)
    assert version["status"] == "failed"
    assert "did not complete after 3 attempts" in version["error"]
    async with platform.sessionmaker() as session:
        left = await session.scalars(select(ModelVersion.status))
        assert "validating" not in set(left)
