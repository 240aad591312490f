"""OpenAI's own client library shows our errors: each status maps to its exception class, and
the exception carries the message, type, param and code (not just "Error code: 404")."""

from __future__ import annotations

import openai
import pytest

from tests.factories import admin_session


@pytest.fixture
async def sdk(platform, owner_key):  # type: ignore[no-untyped-def]
    client = openai.AsyncOpenAI(
        base_url=f"{platform.gateway_url}/v1", api_key=owner_key, max_retries=0
    )
    yield client
    await client.close()


async def test_each_error_reaches_the_client_as_its_class_with_the_message(  # type: ignore[no-untyped-def]
    sdk, platform, llama
):
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk.completions.create(model="nobody/nothing", prompt="hi", max_tokens=2)
    assert missing.value.code == "model_not_found"
    assert missing.value.message == "Error code: 404 - No such model."  # was: the status only
    assert missing.value.type == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.completions.create(model=llama["ref"], prompt="hi", temperature=7)
    assert bad.value.param == "temperature"
    assert "temperature" in bad.value.message

    stranger = openai.AsyncOpenAI(
        base_url=f"{platform.gateway_url}/v1", api_key="llm_not-a-key", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as refused:
        await stranger.models.list()
    await stranger.close()
    assert refused.value.type == "authentication_error"
    assert refused.value.message


async def test_a_spent_quota_is_a_rate_limit_error_with_retry_after(  # type: ignore[no-untyped-def]
    sdk, client, platform, owner, llama
):
    await sdk.completions.create(model=llama["ref"], prompt="hi", max_tokens=2)
    admin = await admin_session(client, platform)
    capped = await client.put(
        f"/api/v1/usage/quotas/{owner.id}", json={"daily_tokens": 1}, headers=admin.headers
    )
    assert capped.status_code == 200

    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.completions.create(model=llama["ref"], prompt="hi", max_tokens=2)
    assert limited.value.code == "quota_exceeded"
    assert limited.value.type == "rate_limit_error"
    assert int(limited.value.response.headers["retry-after"]) >= 1
