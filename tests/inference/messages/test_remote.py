"""A conversation with a provider's model: the provider gets the history as OpenAI messages."""

from __future__ import annotations

from tests.inference.messages.conftest import send
from tests.inference.openai.test_remote import (  # noqa: F401 - fixtures
    allow_loopback,
    provider_app,
    remote_model,
)
from tests.models_hub.conftest import hub_limits  # noqa: F401 - fixture


async def test_remote_model_gets_the_path_as_openai_messages(client, provider_app, remote_model):  # noqa: F811
    dev, ref = remote_model
    created = await client.post(
        "/api/v1/conversations",
        headers=dev.headers,
        json={"model": ref, "system_prompt": "Be brief.", "parameters": {"max_tokens": 5}},
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    first = await send(client, dev, cid, content="hello")
    assert first.status_code == 200, first.text
    second = await send(client, dev, cid, content="and again")
    assert second.status_code == 200, second.text
    answer = second.json()["message"]
    assert answer["status"] == "complete"
    assert answer["model_ref"] == ref
    assert answer["model_version_id"] is None
    assert answer["completion_tokens"] > 0
    sent = provider_app.state.requests[-1].body
    assert sent["model"] == "fake-gpt"
    assert sent["max_tokens"] == 5
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": first.json()["message"]["content"]},
        {"role": "user", "content": "and again"},
    ]
