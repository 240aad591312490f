"""LangChain's ChatOpenAI against the platform: it lists, answers and streams a hosted model,
and each of our errors reaches it as the openai SDK exception LangChain raises, message
included; a 429's Retry-After is waited out before its retry."""

from __future__ import annotations

import asyncio

import openai
import pytest
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
)
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_openai import ChatOpenAI

from tests.inference.openai.limits import (
    exhaust,
    hold_a_generation,
    inference_key,
    one_generation_per_user,
    rate_limited_gateway,
)
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture


def chat(base_url: str, key: str, model: str, **options: object) -> ChatOpenAI:
    values: dict[str, object] = {"temperature": 0, "max_tokens": 8, "max_retries": 0}
    values.update(options)
    return ChatOpenAI(model=model, base_url=base_url, api_key=key, **values)  # type: ignore[arg-type]


async def test_chat_openai_lists_invokes_and_streams(platform, client, owner, owner_key, llama):
    model = chat(f"{platform.gateway_url}/v1", owner_key, llama["ref"])
    listed = await model.root_async_client.models.list()
    assert llama["ref"] in [m.id for m in listed.data]

    answer = await model.ainvoke([HumanMessage("hello there")])
    direct = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={
            "model": llama["ref"],
            "messages": [{"role": "user", "content": "hello there"}],
            "temperature": 0,
            "max_tokens": 8,
        },
    )
    assert direct.status_code == 200
    assert answer.content == direct.json()["choices"][0]["message"]["content"]
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == direct.json()["usage"]["total_tokens"]

    chunks = [chunk async for chunk in model.astream([HumanMessage("hello there")])]
    assert len(chunks) > 1
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed += chunk
    assert isinstance(streamed, AIMessageChunk)
    assert streamed.content == answer.content


async def test_each_error_is_the_openai_exception_with_our_message(platform, owner_key, llama):
    base = f"{platform.gateway_url}/v1"
    with pytest.raises(openai.NotFoundError) as missing:
        await chat(base, owner_key, "nobody/nothing").ainvoke("hi")
    assert isinstance(missing.value, ModelNotFoundError)  # LangChain's own class, too
    assert missing.value.code == "model_not_found"
    assert "No such model." in missing.value.message

    with pytest.raises(openai.BadRequestError) as bad:
        await chat(base, owner_key, llama["ref"], temperature=7).ainvoke("hi")
    assert isinstance(bad.value, ModelInvalidRequestError)
    assert bad.value.param == "temperature"
    assert "temperature" in bad.value.message

    with pytest.raises(openai.AuthenticationError) as refused:
        await chat(base, "llm_not-a-key", llama["ref"]).ainvoke("hi")
    assert isinstance(refused.value, ModelAuthenticationError)
    assert refused.value.type == "authentication_error"


async def test_the_rate_limit_is_a_rate_limit_error_with_retry_after(platform, client, llama):
    key = await inference_key(client)
    async with rate_limited_gateway(platform, per_minute=2) as limited_base:
        limited = chat(limited_base, key, llama["ref"])
        with pytest.raises(openai.RateLimitError) as throttled:
            await exhaust(lambda: limited.ainvoke("hi"), per_minute=2)
    assert isinstance(throttled.value, ModelRateLimitError)
    assert throttled.value.code == "rate_limited"
    assert "per minute" in throttled.value.message
    assert 1 <= int(throttled.value.response.headers["retry-after"]) <= 61


async def test_a_retry_waits_out_retry_after_then_succeeds(  # type: ignore[no-untyped-def]
    platform,
    client,
    owner,
    owner_key,
    llama,
    hub_limits,  # noqa: F811
):
    async with one_generation_per_user(platform, client, owner, hub_limits) as throttled:
        held = await hold_a_generation(throttled.url, owner_key, throttled.slow_ref)
        model = chat(throttled.url, owner_key, llama["ref"], max_retries=1)
        answer = asyncio.create_task(model.ainvoke("hi"))
        await asyncio.wait_for(throttled.inference.refused.wait(), 30)
        await held.stop()  # the slot frees well within the Retry-After
        message = await answer
    assert message.content
    statuses = [e.status for e in throttled.inference.exchanges]
    assert statuses == [200, 429, 200]  # the held generation, the refusal, the retry
    waited, retry_after = throttled.inference.waited_after_refusal()
    assert retry_after == 1
    assert waited >= retry_after
