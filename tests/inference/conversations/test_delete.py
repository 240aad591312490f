"""Soft delete with an undo window, restore, and the purge job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from services.inference.conversations.tasks import purge_conversations
from services.inference.models import Attachment, Conversation, Message
from shared.db import session_scope
from tests.factories import user_session
from tests.inference.conversations.conftest import (
    BASE,
    add_message,
    create_conversation,
    set_activity,
)


async def _count(platform, model) -> int:
    async with session_scope(platform.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _purge(platform) -> dict[str, int]:
    settings = platform.apps["inference"].state.inference.settings
    return await purge_conversations({"settings": settings, "sessionmaker": platform.sessionmaker})


async def test_delete_hides_it_and_says_until_when_it_can_be_restored(
    client, platform, owner, llama
):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == conversation["id"]
    window = platform.apps["inference"].state.inference.settings.conversation_undo_seconds
    deleted_at = datetime.fromisoformat(body["deleted_at"])
    assert datetime.fromisoformat(body["restorable_until"]) - deleted_at == timedelta(
        seconds=window
    )
    gone = await client.get(f"{BASE}/{conversation['id']}", headers=owner.headers)
    assert gone.status_code == 404


async def test_restore_within_the_window_brings_it_back(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"], title="Back")
    await add_message(platform, conversation["id"], "kept")
    await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    response = await client.post(f"{BASE}/{conversation['id']}/restore", headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["title"] == "Back"
    assert [m["content"] for m in response.json()["messages"]] == ["kept"]
    again = await client.get(f"{BASE}/{conversation['id']}", headers=owner.headers)
    assert again.status_code == 200


async def test_restore_after_the_window_is_409(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    await set_activity(
        platform, conversation["id"], deleted_at=datetime.now(UTC) - timedelta(days=1)
    )
    response = await client.post(f"{BASE}/{conversation['id']}/restore", headers=owner.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "restore_window_passed"


async def test_restoring_a_live_conversation_changes_nothing(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"], title="Alive")
    response = await client.post(f"{BASE}/{conversation['id']}/restore", headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["title"] == "Alive"


async def test_only_the_owner_restores(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    stranger = await user_session(client)
    response = await client.post(f"{BASE}/{conversation['id']}/restore", headers=stranger.headers)
    assert response.status_code == 404
    unknown = await client.post(f"{BASE}/{uuid.uuid4()}/restore", headers=owner.headers)
    assert unknown.status_code == 404


async def test_a_participant_may_not_delete(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await client.post(
        f"{BASE}/{conversation['id']}/participants",
        json={"username": friend.username, "role": "write"},
        headers=owner.headers,
    )
    response = await client.delete(f"{BASE}/{conversation['id']}", headers=friend.headers)
    assert response.status_code == 403
    assert response.json()["code"] == "owner_only"


async def test_purge_removes_expired_ones_with_their_messages(client, platform, owner, llama):
    expired = await create_conversation(client, owner, llama["ref"], title="expired")
    recent = await create_conversation(client, owner, llama["ref"], title="recent")
    live = await create_conversation(client, owner, llama["ref"], title="live")
    for conversation in (expired, recent, live):
        await add_message(platform, conversation["id"], "a message")
        if conversation is not live:
            await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    await set_activity(platform, expired["id"], deleted_at=datetime.now(UTC) - timedelta(days=1))

    assert await _purge(platform) == {"purged": 1}
    async with session_scope(platform.sessionmaker) as session:
        left = set(await session.scalars(select(Conversation.title)))
    assert left == {"recent", "live"}
    assert await _count(platform, Message) == 2
    assert await _purge(platform) == {"purged": 0}
    restored = await client.post(f"{BASE}/{recent['id']}/restore", headers=owner.headers)
    assert restored.status_code == 200


async def test_purge_removes_the_attachments_from_storage(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    uploaded = await client.post(
        f"{BASE}/{conversation['id']}/attachments",
        files={"file": ("notes.txt", b"lighthouse notes", "text/plain")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    folder = platform.common["data_dir"] / "storage" / "conversations" / conversation["id"]
    assert any(p.is_file() for p in folder.rglob("*"))
    await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    await set_activity(platform, conversation["id"], deleted_at=datetime.now(UTC) - timedelta(1))

    assert await _purge(platform) == {"purged": 1}
    assert not any(p.is_file() for p in folder.rglob("*"))
    assert await _count(platform, Conversation) == 0
    assert await _count(platform, Attachment) == 0
