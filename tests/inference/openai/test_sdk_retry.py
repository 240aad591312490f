"""The official openai SDK waits out our 429's Retry-After, then its retry succeeds."""

from __future__ import annotations

import asyncio

import openai

from tests.inference.openai.limits import hold_a_generation, one_generation_per_user
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture


async def test_the_sdk_waits_out_retry_after_then_succeeds(  # type: ignore[no-untyped-def]
    platform,
    client,
    owner,
    owner_key,
    llama,
    hub_limits,  # noqa: F811
):
    async with one_generation_per_user(platform, client, owner, hub_limits) as throttled:
        held = await hold_a_generation(throttled.url, owner_key, throttled.slow_ref)
        sdk = openai.AsyncOpenAI(base_url=throttled.url, api_key=owner_key, max_retries=1)
        answer = asyncio.create_task(
            sdk.completions.create(model=llama["ref"], prompt="hi", max_tokens=4)
        )
        await asyncio.wait_for(throttled.inference.refused.wait(), 30)
        await held.stop()  # the slot frees well within the Retry-After
        completion = await answer
        await sdk.close()
    assert completion.choices[0].text
    statuses = [e.status for e in throttled.inference.exchanges]
    assert statuses == [200, 429, 200]  # the held generation, the refusal, the retry
    waited, retry_after = throttled.inference.waited_after_refusal()
    assert retry_after == 1
    assert waited >= retry_after
