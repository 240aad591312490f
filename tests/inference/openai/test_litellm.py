"""LiteLLM against the platform, as its "openai/" provider: it lists, answers and streams a
hosted model; each of our errors reaches it as LiteLLM's exception class with our message;
its Router waits out a 429's Retry-After before the retry."""

from __future__ import annotations

import asyncio
import os

# The model cost map bundled with LiteLLM instead of a download at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
import pytest
from litellm.litellm_core_utils.get_model_cost_map import (
    get_model_cost_map_source_info,
)

from tests.inference.openai.limits import (
    exhaust,
    hold_a_generation,
    inference_key,
    one_generation_per_user,
    rate_limited_gateway,
)
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture

# LiteLLM's own pydantic types warn about TypedDict ReadOnly items when first built.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .*ReadOnly:UserWarning")

HELLO = [{"role": "user", "content": "hello there"}]


def ask(model: str, base: str, key: str, **options: object) -> dict[str, object]:
    return {
        "model": f"openai/{model}",
        "api_base": base,
        "api_key": key,
        "messages": HELLO,
        "temperature": 0,
        "max_tokens": 8,
        "num_retries": 0,
        "max_retries": 0,
        **options,
    }


async def test_litellm_lists_completes_and_streams(platform, client, owner, owner_key, llama):
    assert get_model_cost_map_source_info()["source"] == "local"  # nothing fetched
    base = f"{platform.gateway_url}/v1"
    # Its listing is synchronous: off the event loop the platform's servers run on.
    listed = await asyncio.to_thread(
        litellm.get_valid_models,
        check_provider_endpoint=True,
        custom_llm_provider="openai",
        api_base=base,
        api_key=owner_key,
    )
    assert llama["ref"] in listed

    answer = await litellm.acompletion(**ask(llama["ref"], base, owner_key))
    direct = await client.post(
        "/v1/chat/completions",
        headers=owner.headers,
        json={"model": llama["ref"], "messages": HELLO, "temperature": 0, "max_tokens": 8},
    )
    assert direct.status_code == 200
    assert answer.choices[0].message.content == direct.json()["choices"][0]["message"]["content"]
    assert answer.usage.total_tokens == direct.json()["usage"]["total_tokens"]

    stream = await litellm.acompletion(**ask(llama["ref"], base, owner_key, stream=True))
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert len(pieces) > 1
    assert "".join(pieces) == answer.choices[0].message.content


async def test_each_error_is_litellms_class_with_our_message(platform, owner_key, llama):
    base = f"{platform.gateway_url}/v1"
    with pytest.raises(litellm.NotFoundError) as missing:
        await litellm.acompletion(**ask("nobody/nothing", base, owner_key))
    assert missing.value.status_code == 404
    assert "No such model." in missing.value.message

    with pytest.raises(litellm.BadRequestError) as bad:
        await litellm.acompletion(**ask(llama["ref"], base, owner_key, temperature=7))
    assert bad.value.status_code == 400
    assert "temperature" in bad.value.message

    with pytest.raises(litellm.AuthenticationError) as refused:
        await litellm.acompletion(**ask(llama["ref"], base, "llm_not-a-key"))
    assert refused.value.status_code == 401
    assert "API key" in refused.value.message


async def test_the_rate_limit_is_litellms_rate_limit_error(platform, client, llama):
    key = await inference_key(client)
    async with rate_limited_gateway(platform, per_minute=2) as limited_base:
        with pytest.raises(litellm.RateLimitError) as throttled:
            await exhaust(
                lambda: litellm.acompletion(**ask(llama["ref"], limited_base, key)), per_minute=2
            )
    assert throttled.value.status_code == 429
    assert "per minute" in throttled.value.message
    headers = throttled.value.litellm_response_headers
    assert 1 <= int(headers["retry-after"]) <= 61


async def test_the_router_waits_out_retry_after_then_succeeds(  # type: ignore[no-untyped-def]
    platform,
    client,
    owner,
    owner_key,
    llama,
    hub_limits,  # noqa: F811
):
    async with one_generation_per_user(platform, client, owner, hub_limits) as throttled:
        held = await hold_a_generation(throttled.url, owner_key, throttled.slow_ref)
        router = litellm.Router(
            model_list=[
                {
                    "model_name": "tiny",
                    "litellm_params": {
                        "model": f"openai/{llama['ref']}",
                        "api_base": throttled.url,
                        "api_key": owner_key,
                    },
                }
            ],
            num_retries=1,
        )
        answer = asyncio.create_task(router.acompletion(model="tiny", messages=HELLO, max_tokens=4))
        await asyncio.wait_for(throttled.inference.refused.wait(), 30)
        await held.stop()  # the slot frees well within the Retry-After
        response = await answer
    assert response.choices[0].message.content
    statuses = [e.status for e in throttled.inference.exchanges]
    assert statuses == [200, 429, 200]  # the held generation, the refusal, the retry
    waited, retry_after = throttled.inference.waited_after_refusal()
    assert retry_after == 1
    assert waited >= retry_after
