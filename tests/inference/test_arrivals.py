"""The service counts each generating request from its arrival until its engine has it, so an
engine can hold its queue for requests still on their way; nothing is left counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.factories import user_session
from tests.inference.messages.conftest import inference, new_conversation, send
from tests.inference.openai.test_openai_api import PROMPT


async def test_a_request_is_on_its_way_until_the_engine_has_it(
    client, owner, llama, platform, monkeypatch: pytest.MonkeyPatch
):
    ctx = inference(platform)
    arrivals = ctx.registry.arrivals
    checking, release = asyncio.Event(), asyncio.Event()
    access = ctx.models.access

    async def paused_access(*args: Any, **kwargs: Any) -> Any:
        checking.set()
        await release.wait()
        return await access(*args, **kwargs)

    monkeypatch.setattr(ctx.models, "access", paused_access)
    body = {"model": llama["ref"], "prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    request = asyncio.create_task(client.post("/v1/completions", headers=owner.headers, json=body))
    await asyncio.wait_for(checking.wait(), timeout=30)
    assert arrivals.pending == 1  # its access is being checked
    release.set()
    response = await request
    assert response.status_code == 200, response.text
    assert arrivals.pending == 0


async def test_no_request_is_left_counted_whatever_its_end(client, owner, llama, platform):
    arrivals = inference(platform).registry.arrivals
    raw = {"model": llama["ref"], "prompt": PROMPT, "max_tokens": 4, "temperature": 0}
    answered = await client.post("/v1/completions", headers=owner.headers, json=raw)
    assert answered.status_code == 200, answered.text
    unknown = await client.post(
        "/v1/completions", headers=owner.headers, json={**raw, "model": "nobody/nothing"}
    )
    assert unknown.status_code == 404
    too_long = await client.post(
        "/v1/completions", headers=owner.headers, json={**raw, "max_tokens": 10**6}
    )
    assert too_long.status_code in (400, 422)
    conversation = await new_conversation(client, owner, llama)
    turn = await send(client, owner, conversation["id"], content="hello")
    assert turn.status_code == 200, turn.text
    again = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/"
        f"{turn.json()['message']['id']}/regenerate",
        headers=owner.headers,
        json={"stream": False},
    )
    assert again.status_code == 200, again.text
    stranger = await user_session(client)
    refused = await send(client, stranger, conversation["id"], content="hi")
    assert refused.status_code == 404
    assert arrivals.pending == 0
