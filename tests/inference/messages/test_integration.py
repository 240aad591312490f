"""What a turn takes from the rest of the service: templates, attachments, quotas, sharing,
activity records."""

from __future__ import annotations

import dataclasses
import json
import uuid

from services.inference.models import TokenQuota
from tests.factories import user_session
from tests.inference.messages.conftest import chat_ids, new_conversation, send


async def test_variables_fill_the_conversations_template(client, owner, llama):
    template = await client.post(
        "/api/v1/prompt-templates",
        headers=owner.headers,
        json={"name": "ask", "body": "Explain {{ topic }} simply.", "variables": ["topic"]},
    )
    assert template.status_code == 201, template.text
    conversation = await new_conversation(client, owner, llama, template_id=template.json()["id"])
    response = await send(client, owner, conversation["id"], variables={"topic": "tides"})
    assert response.status_code == 200, response.text
    assert response.json()["user_message"]["content"] == "Explain tides simply."
    missing = await send(client, owner, conversation["id"], variables={})
    assert missing.status_code == 422
    assert "topic" in missing.text


async def test_attachment_text_reaches_the_prompt(client, owner, llama, prompts, tiny_tokenizer):
    conversation = await new_conversation(client, owner, llama, system_prompt="Be brief.")
    uploaded = await client.post(
        f"/api/v1/conversations/{conversation['id']}/attachments",
        headers=owner.headers,
        files={"file": ("notes.txt", b"The ferry leaves at nine.")},
    )
    assert uploaded.status_code == 201, uploaded.text
    answer = (await send(client, owner, conversation["id"], content="when?")).json()["message"]
    system = "Be brief.\n\nAttached file notes.txt:\nThe ferry leaves at nine."
    expected = chat_ids(
        tiny_tokenizer,
        [{"role": "system", "content": system}, {"role": "user", "content": "when?"}],
    )
    assert prompts[answer["id"]] == expected


async def test_a_spent_quota_refuses_the_turn(client, platform, owner, llama):
    user = await user_session(client)
    conversation = await new_conversation(client, user, llama)
    assert (await send(client, user, conversation["id"], content="hi")).status_code == 200
    async with platform.sessionmaker() as session:
        session.add(TokenQuota(user_id=uuid.UUID(user.id), daily_tokens=1))
        await session.commit()
    response = await send(client, user, conversation["id"], content="again")
    assert response.status_code == 429
    assert response.json()["code"] == "quota_exceeded"


async def test_participants_write_or_only_read(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    writer, reader = await user_session(client), await user_session(client)
    for user, role in ((writer, "write"), (reader, "read")):
        shared = await client.post(
            f"/api/v1/conversations/{conversation['id']}/participants",
            headers=owner.headers,
            json={"username": user.username, "role": role},
        )
        assert shared.status_code == 201, shared.text
    written = await send(client, writer, conversation["id"], content="from the writer")
    assert written.status_code == 200, written.text
    assert written.json()["user_message"]["author_id"] == writer.id
    refused = await send(client, reader, conversation["id"], content="from the reader")
    assert refused.status_code == 403
    assert refused.json()["code"] == "read_only_participant"
    # Readers rate answers all the same.
    answer = written.json()["message"]
    rated = await client.put(
        f"/api/v1/conversations/{conversation['id']}/messages/{answer['id']}/feedback",
        headers=reader.headers,
        json={"rating": "up"},
    )
    assert rated.status_code == 200, rated.text


async def test_sending_and_regenerating_are_recorded(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    answer = (await send(client, owner, conversation["id"], content="hi")).json()["message"]
    regenerated = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/{answer['id']}/regenerate",
        headers=owner.headers,
        json={"stream": False},
    )
    assert regenerated.status_code == 200
    records = await client.get("/api/v1/activity", headers=owner.headers)
    assert records.status_code == 200, records.text
    actions = [r["action"] for r in records.json()["items"]]
    assert "message.sent" in actions
    assert "message.regenerated" in actions
    sent = next(r for r in records.json()["items"] if r["action"] == "message.sent")
    assert sent["conversation_id"] == conversation["id"]
    assert sent["model_id"] == llama["id"]


async def test_running_answers_count_against_the_per_user_limit(client, platform, owner, llama):
    app = platform.apps["inference"]
    original = app.state.inference
    settings = original.settings.model_copy(update={"max_concurrent_per_user": 1})
    app.state.inference = dataclasses.replace(original, settings=settings)
    try:
        first = await new_conversation(client, owner, llama, parameters={"max_tokens": 220})
        second = await new_conversation(client, owner, llama)
        async with client.stream(
            "POST",
            f"/api/v1/conversations/{first['id']}/messages",
            headers={**owner.headers, "Accept": "text/event-stream"},
            json={"content": "a long story"},
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):  # `start`: the answer holds the one slot
                    answer_id = json.loads(line[5:])["message"]["id"]
                    break
        refused = await send(client, owner, second["id"], content="hi")
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_concurrent_requests"
        stopped = await client.post(
            f"/api/v1/conversations/{first['id']}/messages/{answer_id}/stop",
            headers=owner.headers,
        )
        assert stopped.json()["status"] in ("cancelled", "complete")
        # The slot is free once the answer has ended.
        assert (await send(client, owner, second["id"], content="hi")).status_code == 200
    finally:
        app.state.inference = original
