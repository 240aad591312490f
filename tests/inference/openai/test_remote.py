"""Models of external providers, proxied with the same API (a fake provider on loopback)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from shared.testing import serve_app
from tests.factories import user_session
from tests.fakes.openai_provider import create_fake_provider
from tests.models_hub.conftest import developer, hub_limits  # noqa: F401 - fixture


@pytest.fixture
async def provider_app():
    app = create_fake_provider(api_key="sk-remote", models=["fake-gpt"])
    async with serve_app(app) as url:
        app.state.url = url
        yield app


@pytest.fixture
def allow_loopback(platform, hub_limits):  # noqa: F811
    hub_limits(outbound_allow=["127.0.0.1"])
    app = platform.apps["inference"]
    original = app.state.inference
    app.state.inference = dataclasses.replace(
        original, settings=original.settings.model_copy(update={"outbound_allow": ["127.0.0.1"]})
    )
    yield
    app.state.inference = original


@pytest.fixture
async def remote_model(client, provider_app, allow_loopback):
    dev = await developer(client, "proxyowner")
    created = await client.post(
        "/api/v1/providers",
        headers=dev.headers,
        json={
            "name": "Fake",
            "base_url": f"{provider_app.state.url}/v1",
            "api_key": "sk-remote",
            "models": [{"remote_model": "fake-gpt", "name": "Fake GPT"}],
        },
    )
    assert created.status_code == 201, created.text
    return dev, "proxyowner/fake-gpt"


async def test_remote_chat_non_streaming_and_streaming(client, provider_app, remote_model):
    dev, ref = remote_model
    body = {"model": ref, "messages": [{"role": "user", "content": "hello world"}]}
    whole = await client.post("/v1/chat/completions", json=body, headers=dev.headers)
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["model"] == ref
    text = answer["choices"][0]["message"]["content"]
    assert text
    assert answer["usage"]["completion_tokens"] > 0
    # The provider saw its own model name and the key we hold for it.
    sent = provider_app.state.requests[-1]
    assert sent.body["model"] == "fake-gpt"
    assert sent.headers["authorization"] == "Bearer sk-remote"

    pieces: list[str] = []
    async with client.stream(
        "POST", "/v1/chat/completions", headers=dev.headers, json={**body, "stream": True}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    pieces.append(chunk["choices"][0]["delta"]["content"])
    assert "".join(pieces) == text
    ledger = (await client.get("/api/v1/usage", headers=dev.headers)).json()
    assert {r["source"] for r in ledger["items"]} == {"remote"}


async def test_provider_errors_map_to_502_and_504(client, provider_app, remote_model, platform):
    dev, ref = remote_model
    body = {"model": ref, "prompt": "hi"}
    provider_app.state.fail_with = 500
    failed = await client.post("/v1/completions", json=body, headers=dev.headers)
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "provider_error"
    provider_app.state.fail_with = None

    app = platform.apps["inference"]
    original = app.state.inference
    import httpx

    slow_client = httpx.AsyncClient(timeout=0.2)
    app.state.inference = dataclasses.replace(original, remote=slow_client)
    provider_app.state.delay_seconds = 1.0
    try:
        slow = await client.post("/v1/completions", json=body, headers=dev.headers)
    finally:
        app.state.inference = original
        provider_app.state.delay_seconds = 0
        await slow_client.aclose()
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "provider_timeout"


async def test_concurrent_requests_per_user_are_capped(
    client, platform, provider_app, remote_model
):
    dev, ref = remote_model
    app = platform.apps["inference"]
    original = app.state.inference
    app.state.inference = dataclasses.replace(
        original, settings=original.settings.model_copy(update={"max_concurrent_per_user": 1})
    )
    provider_app.state.delay_seconds = 1.0  # the first request holds its slot this long
    body = {"model": ref, "prompt": "hi"}
    try:
        first = asyncio.create_task(client.post("/v1/completions", json=body, headers=dev.headers))
        await asyncio.sleep(0.3)
        second = await client.post("/v1/completions", json=body, headers=dev.headers)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "too_many_concurrent_requests"
        assert (await first).status_code == 200
        # The slot is free again once the first has finished.
        provider_app.state.delay_seconds = 0
        third = await client.post("/v1/completions", json=body, headers=dev.headers)
        assert third.status_code == 200
    finally:
        app.state.inference = original


async def test_a_remote_model_is_private_until_its_owner_publishes_it(client, remote_model):
    dev, ref = remote_model
    other = await user_session(client)
    body = {"model": ref, "messages": [{"role": "user", "content": "hello"}]}
    hidden = await client.post("/v1/chat/completions", json=body, headers=other.headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "model_not_found"

    model_id = (await client.get(f"/api/v1/models/by-ref/{ref}", headers=dev.headers)).json()["id"]
    published = await client.patch(
        f"/api/v1/models/{model_id}", json={"visibility": "public"}, headers=dev.headers
    )
    assert published.status_code == 200
    answered = await client.post("/v1/chat/completions", json=body, headers=other.headers)
    assert answered.status_code == 200, answered.text


async def test_owner_caps_bound_what_others_spend_on_the_owners_key(client, remote_model):
    dev, ref = remote_model
    model_id = (await client.get(f"/api/v1/models/by-ref/{ref}", headers=dev.headers)).json()["id"]
    capped = await client.patch(
        f"/api/v1/models/{model_id}",
        json={"visibility": "public", "user_daily_token_cap": 1},
        headers=dev.headers,
    )
    assert capped.status_code == 200
    assert capped.json()["user_daily_token_cap"] == 1
    body = {"model": ref, "messages": [{"role": "user", "content": "hello"}]}
    first, second = await user_session(client), await user_session(client)

    assert (await client.post("/v1/chat/completions", json=body, headers=first.headers)).is_success
    spent = await client.post("/v1/chat/completions", json=body, headers=first.headers)
    assert spent.status_code == 429
    assert spent.json()["error"]["code"] == "model_cap_reached"
    assert int(spent.headers["retry-after"]) > 0
    # Each user has their own allowance; the owner is bound by none of it.
    assert (await client.post("/v1/chat/completions", json=body, headers=second.headers)).is_success
    for _ in range(2):
        own = await client.post("/v1/chat/completions", json=body, headers=dev.headers)
        assert own.status_code == 200

    # A cap for everyone together: the two users have spent it between them.
    await client.patch(
        f"/api/v1/models/{model_id}",
        json={"user_daily_token_cap": None, "daily_token_cap": 2},
        headers=dev.headers,
    )
    third = await user_session(client)
    together = await client.post("/v1/chat/completions", json=body, headers=third.headers)
    assert together.status_code == 429
    assert "all users together" in together.json()["error"]["message"]
    assert (await client.post("/v1/chat/completions", json=body, headers=dev.headers)).is_success


async def test_caps_are_bounded_to_what_their_column_holds(client, remote_model):
    dev, ref = remote_model
    model_id = (await client.get(f"/api/v1/models/by-ref/{ref}", headers=dev.headers)).json()["id"]
    for value in (0, -1, 2**63, "many"):
        response = await client.patch(
            f"/api/v1/models/{model_id}", json={"daily_token_cap": value}, headers=dev.headers
        )
        assert response.status_code == 422, value
        assert response.json()["fields"][0]["field"].endswith("daily_token_cap")
