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


async def test_a_remote_history_is_trimmed_to_the_context_its_owner_states(
    client,
    provider_app,  # noqa: F811
    remote_model,  # noqa: F811
):
    dev, ref = remote_model
    model = (await client.get(f"/api/v1/models/by-ref/{ref}", headers=dev.headers)).json()
    stated = await client.patch(
        f"/api/v1/models/{model['id']}", json={"context_length": 300}, headers=dev.headers
    )
    assert stated.status_code == 200, stated.text
    assert stated.json()["context_length"] == 300
    created = await client.post(
        "/api/v1/conversations",
        headers=dev.headers,
        json={"model": ref, "system_prompt": "Be brief.", "parameters": {"max_tokens": 5}},
    )
    cid = created.json()["id"]
    long_turns = ["a" * 300, "b" * 300, "c" * 300]  # about 100 tokens each, by the estimate
    for text in long_turns:
        sent = await send(client, dev, cid, content=text)
        assert sent.status_code == 200, sent.text

    answer = sent.json()["message"]
    assert answer["trimmed_messages"] >= 2
    received = provider_app.state.requests[-1].body["messages"]
    assert received[0] == {"role": "system", "content": "Be brief."}
    assert received[1]["role"] == "user"  # whole turns leave, oldest first
    assert received[-1] == {"role": "user", "content": "c" * 300}
    assert {"role": "user", "content": "a" * 300} not in received

    too_long = await send(client, dev, cid, content="d" * 2000)
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "context_too_long"


async def test_only_a_remote_model_takes_a_stated_context_length(client, platform, owner, llama):
    response = await client.patch(
        f"/api/v1/models/{llama['id']}", json={"context_length": 300}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "context_length_not_settable"
