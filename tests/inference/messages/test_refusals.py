"""What is refused, and how: each bad input its 4xx; other people's conversations are 404."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from services.models_hub.models import Model
from tests.factories import user_session
from tests.inference.messages.conftest import new_conversation, send


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, None),
        ({"content": "hi", "variables": {"a": "b"}}, 422, None),
        ({"content": ""}, 422, None),
        ({"content": "hi", "parameters": {"temperature": 3}}, 422, None),
        ({"content": "hi", "parameters": {"top_k": 500}}, 422, None),
        ({"content": "hi", "parameters": {"max_tokens": 256}}, 422, "max_tokens_too_large"),
        ({"content": "hi", "surprise": 1}, 422, None),
        ({"variables": {"topic": "cats"}}, 422, "no_template"),
        ({"content": "hi", "parent_id": str(uuid.uuid4())}, 404, "message_not_found"),
    ],
)
async def test_bad_messages_are_refused(client, owner, llama, body, status, code):
    conversation = await new_conversation(client, owner, llama)
    response = await send(client, owner, conversation["id"], **body)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["code"] == code


async def test_a_user_message_is_no_parent(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    first = (await send(client, owner, conversation["id"], content="hi")).json()
    response = await send(
        client, owner, conversation["id"], content="x", parent_id=first["user_message"]["id"]
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_parent"


async def test_a_system_prompt_that_leaves_no_room_is_400(client, owner, llama):
    conversation = await new_conversation(
        client, owner, llama, system_prompt="the quick brown fox jumps " * 40
    )
    response = await send(client, owner, conversation["id"], content="hi")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "context_too_long"
    assert "system prompt and attachments" in body["detail"]


async def test_a_message_too_long_for_the_context_is_400(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    response = await send(client, owner, conversation["id"], content="lazy dog " * 200)
    assert response.status_code == 400
    assert response.json()["code"] == "context_too_long"


async def test_bad_last_event_id_is_400(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    answer = (await send(client, owner, conversation["id"], content="hi")).json()["message"]
    response = await client.get(
        f"/api/v1/conversations/{conversation['id']}/messages/{answer['id']}/stream",
        headers={**owner.headers, "Last-Event-ID": "yesterday"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_last_event_id"


async def test_user_messages_cannot_be_regenerated_stopped_or_rated(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    user = (await send(client, owner, conversation["id"], content="hi")).json()["user_message"]
    base = f"/api/v1/conversations/{conversation['id']}/messages/{user['id']}"
    for method, path, body in [
        ("POST", "/regenerate", {}),
        ("POST", "/stop", None),
        ("PUT", "/feedback", {"rating": "up"}),
    ]:
        response = await client.request(method, base + path, headers=owner.headers, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "not_an_assistant_message"


async def test_a_model_made_private_refuses_new_turns_but_history_stays(
    client, platform, owner, llama
):
    someone = await user_session(client)
    conversation = await new_conversation(client, someone, llama)
    assert (await send(client, someone, conversation["id"], content="hi")).status_code == 200
    async with platform.sessionmaker() as session:
        await session.execute(
            update(Model).where(Model.id == uuid.UUID(llama["id"])).values(visibility="private")
        )
        await session.commit()
    response = await send(client, someone, conversation["id"], content="again")
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"
    read = await client.get(f"/api/v1/conversations/{conversation['id']}", headers=someone.headers)
    assert read.status_code == 200
    assert len(read.json()["messages"]) == 2


async def test_another_users_conversation_is_404_on_every_message_route(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    answer = (await send(client, owner, conversation["id"], content="hi")).json()["message"]
    stranger = await user_session(client)
    base = f"/api/v1/conversations/{conversation['id']}/messages"
    routes = [
        ("POST", base, {"content": "hi", "stream": False}),
        ("POST", f"{base}/{answer['id']}/regenerate", {}),
        ("GET", f"{base}/{answer['id']}/stream", None),
        ("POST", f"{base}/{answer['id']}/stop", None),
        ("PUT", f"{base}/{answer['id']}/feedback", {"rating": "up"}),
        ("DELETE", f"{base}/{answer['id']}/feedback", None),
    ]
    for method, url, body in routes:
        response = await client.request(method, url, headers=stranger.headers, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["code"] == "conversation_not_found"


async def test_a_message_of_another_conversation_is_404(client, owner, llama):
    mine = await new_conversation(client, owner, llama)
    other = await new_conversation(client, owner, llama)
    answer = (await send(client, owner, other["id"], content="hi")).json()["message"]
    response = await client.post(
        f"/api/v1/conversations/{mine['id']}/messages/{answer['id']}/regenerate",
        headers=owner.headers,
        json={},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"
