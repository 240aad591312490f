"""GET /api/v1/admin/engine through the gateway: the measured configuration of each loaded
model, for admins only; and the same choice in the inference service's /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.factories import UserSession, admin_session, user_session

PROMPT = "the quick brown fox"


async def _load(client: httpx.AsyncClient, owner: UserSession, llama: dict[str, Any]) -> None:
    response = await client.post(
        "/v1/completions",
        json={"model": llama["ref"], "prompt": PROMPT, "max_tokens": 4},
        headers=owner.headers,
    )
    assert response.status_code == 200


async def test_admins_read_each_models_measured_configuration(
    client: httpx.AsyncClient, platform: Any, owner: UserSession, llama: dict[str, Any]
) -> None:
    await _load(client, owner, llama)
    admin = await admin_session(client, platform)
    response = await client.get("/api/v1/admin/engine", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["device"] == "cpu"
    assert body["cpu"]["cpus"] >= 1
    assert isinstance(body["cpu"]["flags"], list)
    assert body["settings"]["tune_seconds"] > 0
    model = next(m for m in body["models"] if m["model_key"] == llama["version_id"])
    tuning = model["tuning"]
    assert tuning["sources"] == {
        "dtype": "tuned",
        "threads": "tuned",
        "packing": "tuned",
        "quantization": "pinned",
    }
    measured = [t for t in tuning["trials"] if t["status"] == "measured"]
    assert measured
    assert all(t["step_ms_1"] > 0 and t["step_ms_batch"] > 0 for t in measured)
    assert all(t["prefill_ms"] > 0 for t in measured)
    chosen = (model["dtype"], model["threads"])
    assert chosen in {(t["dtype"], t["threads"]) for t in measured}


async def test_other_users_are_refused(client: httpx.AsyncClient, owner: UserSession) -> None:
    other = await user_session(client)
    response = await client.get("/api/v1/admin/engine", headers=other.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"  # /api/v1/admin needs the admin scope


async def test_anonymous_callers_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/admin/engine")
    assert response.status_code == 401


async def test_metrics_show_the_choice(
    client: httpx.AsyncClient, platform: Any, owner: UserSession, llama: dict[str, Any]
) -> None:
    await _load(client, owner, llama)
    text = ""
    async with httpx.AsyncClient(base_url=platform.service_urls["inference"]) as direct:
        for _ in range(40):  # the gauges are refreshed every second
            text = (await direct.get("/metrics")).text
            if f'model="{llama["version_id"]}"' in text:
                break
            await asyncio.sleep(0.1)
    config = [
        line
        for line in text.splitlines()
        if line.startswith("llmnet_inference_engine_config{")
        and f'model="{llama["version_id"]}"' in line
    ]
    assert len(config) == 1
    assert 'dtype_source="tuned"' in config[0]
    assert 'threads_source="tuned"' in config[0]
    assert config[0].endswith(" 1.0")
    steps = [
        line
        for line in text.splitlines()
        if line.startswith("llmnet_inference_tuning_step_seconds{")
        and f'model="{llama["version_id"]}"' in line
    ]
    assert any('batch="1"' in line for line in steps)
    assert any('batch="8"' in line for line in steps)
    assert any(
        line.startswith("llmnet_inference_tuning_prefill_seconds{")
        and f'model="{llama["version_id"]}"' in line
        for line in text.splitlines()
    )
    assert "llmnet_inference_cpu_info{" in text
