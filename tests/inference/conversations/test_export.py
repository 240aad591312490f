"""Export: JSON with everything (rebuilding from it gives the same conversation), Markdown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update

from services.inference.conversations.schemas import ConversationExport
from services.inference.models import Conversation, ConversationParticipant, Message
from shared.db import session_scope
from tests.factories import user_session
from tests.inference.conversations.conftest import BASE, add_message, create_conversation

T0 = datetime(2026, 12, 5, 8, 30, tzinfo=UTC)


async def _conversation_with_branches(client, platform, owner, llama):
    conversation = await create_conversation(
        client,
        owner,
        llama["ref"],
        title="Lighthouses",
        system_prompt="You are a keeper.",
        parameters={"temperature": 0.5, "stop": ["END"], "seed": 3},
    )
    friend = await user_session(client)
    await client.post(
        f"{BASE}/{conversation['id']}/participants",
        json={"username": friend.username, "role": "read"},
        headers=owner.headers,
    )
    q = await add_message(platform, conversation["id"], "Why a light?", created_at=T0)
    await add_message(
        platform,
        conversation["id"],
        "Old answer.",
        role="assistant",
        parent_id=q,
        created_at=T0 + timedelta(seconds=1),
        status="cancelled",
        model_ref=llama["ref"],
        model_id=uuid.UUID(llama["id"]),
    )
    answer = await add_message(
        platform,
        conversation["id"],
        "So ships see the rocks.",
        role="assistant",
        parent_id=q,
        created_at=T0 + timedelta(seconds=2),
        status="complete",
        model_ref=llama["ref"],
        model_id=uuid.UUID(llama["id"]),
        model_version_id=uuid.UUID(llama["version_id"]),
        prompt_tokens=11,
        completion_tokens=5,
        time_to_first_token_ms=12.0,
        latency_ms=40.0,
        tokens_per_second=125.0,
        finish_reason="stop",
        trimmed_messages=0,
        completed_at=T0 + timedelta(seconds=3),
    )
    return conversation, q, answer


async def _rebuild(platform, document: ConversationExport) -> None:
    """The conversation from its export alone, as an import would write it."""
    data = document.conversation
    async with session_scope(platform.sessionmaker) as session:
        session.add(
            Conversation(**data.model_dump(exclude={"current_message_id"}), deleted_at=None)
        )
        await session.flush()
        for p in document.participants:
            session.add(ConversationParticipant(conversation_id=data.id, **p.model_dump()))
        for m in document.messages:  # parents come first
            session.add(Message(conversation_id=data.id, **m.model_dump()))
            await session.flush()
        # Both named, so the column's onupdate leaves the exported last activity as it was.
        await session.execute(
            update(Conversation)
            .where(Conversation.id == data.id)
            .values(current_message_id=data.current_message_id, updated_at=data.updated_at)
        )


async def test_json_export_rebuilds_the_same_conversation(client, platform, owner, llama):
    conversation, _, _ = await _conversation_with_branches(client, platform, owner, llama)
    response = await client.get(f"{BASE}/{conversation['id']}/export", headers=owner.headers)
    assert response.status_code == 200
    exported = ConversationExport.model_validate(response.json())
    assert exported.format == "llmnet.conversation"
    assert len(exported.messages) == 3
    assert len(exported.participants) == 1

    async with session_scope(platform.sessionmaker) as session:
        await session.execute(
            delete(Conversation).where(Conversation.id == uuid.UUID(conversation["id"]))
        )
    await _rebuild(platform, exported)

    again = await client.get(f"{BASE}/{conversation['id']}/export", headers=owner.headers)
    assert again.status_code == 200
    first, second = response.json(), again.json()
    first.pop("exported_at")
    second.pop("exported_at")
    assert second == first


async def test_json_export_carries_every_branch_and_its_metadata(client, platform, owner, llama):
    conversation, q, answer = await _conversation_with_branches(client, platform, owner, llama)
    body = (
        await client.get(
            f"{BASE}/{conversation['id']}/export", params={"format": "json"}, headers=owner.headers
        )
    ).json()
    assert body["conversation"]["system_prompt"] == "You are a keeper."
    assert body["conversation"]["parameters"] == {"temperature": 0.5, "stop": ["END"], "seed": 3}
    assert body["conversation"]["current_message_id"] == answer
    assert [m["status"] for m in body["messages"]] == ["complete", "cancelled", "complete"]
    last = body["messages"][2]
    assert last["parent_id"] == q
    assert last["model_version_id"] == llama["version_id"]
    assert last["tokens_per_second"] == 125.0


async def test_markdown_export_shows_the_current_branch(client, platform, owner, llama):
    conversation, _, _ = await _conversation_with_branches(client, platform, owner, llama)
    response = await client.get(
        f"{BASE}/{conversation['id']}/export", params={"format": "markdown"}, headers=owner.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert "attachment" in response.headers["content-disposition"]
    assert ".md" in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Lighthouses\n")
    assert f"- Model: {llama['ref']}" in text
    assert "## System prompt\n\n> You are a keeper." in text
    assert "## User · 2026-12-05 08:30:00 UTC\n\nWhy a light?" in text
    assert f"## Assistant ({llama['ref']}) · 2026-12-05 08:30:02 UTC" in text
    assert "So ships see the rocks." in text
    assert "Old answer." not in text  # another branch
    assert "11 prompt + 5 completion tokens" in text
    assert "125.0 tokens/s" in text
    assert text.index("Why a light?") < text.index("So ships see the rocks.")


async def test_a_reader_may_export(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await client.post(
        f"{BASE}/{conversation['id']}/participants",
        json={"username": friend.username},
        headers=owner.headers,
    )
    response = await client.get(f"{BASE}/{conversation['id']}/export", headers=friend.headers)
    assert response.status_code == 200


async def test_an_unknown_format_is_422(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.get(
        f"{BASE}/{conversation['id']}/export", params={"format": "pdf"}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "format"
