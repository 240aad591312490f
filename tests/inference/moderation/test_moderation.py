"""Moderation through the gateway: admins list and search everyone's conversations and
messages, and export them as CSV; nobody else may."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from services.inference.models import Conversation, Message
from shared.db import session_scope
from tests.factories import admin_session, user_session

MODEL_A = uuid.uuid4()
MODEL_B = uuid.uuid4()


async def _conversation(platform, owner, title, *, model_id=MODEL_A, deleted=False, at=None):
    async with session_scope(platform.sessionmaker) as session:
        conversation = Conversation(
            owner_id=uuid.UUID(owner.id),
            title=title,
            model_id=model_id,
            model_ref="someone/model",
            parameters={},
            deleted_at=datetime.now(UTC) if deleted else None,
        )
        if at is not None:
            conversation.created_at = at
        session.add(conversation)
        await session.flush()
        return conversation.id


async def _message(
    platform, conversation_id, author, content, *, role="user", model_id=None, at=None
):
    async with session_scope(platform.sessionmaker) as session:
        message = Message(
            conversation_id=conversation_id,
            role=role,
            author_id=uuid.UUID(author.id),
            content=content,
            parameters={},
            model_id=model_id,
            model_ref="someone/model" if model_id else None,
        )
        if at is not None:
            message.created_at = at
        session.add(message)
        await session.flush()
        return str(message.id)


@pytest.fixture
async def admin(client, platform):
    return await admin_session(client, platform)


@pytest.fixture
async def world(client, platform):
    """Two users' conversations and messages."""
    alice = await user_session(client)
    bob = await user_session(client)
    trip = await _conversation(platform, alice, "Holiday trip to Lisbon")
    taxes = await _conversation(platform, bob, "Tax questions", model_id=MODEL_B)
    await _message(platform, trip, alice, "Which museums should I visit in Lisbon?")
    await _message(
        platform, trip, alice, "Try the tile museum.", role="assistant", model_id=MODEL_A
    )
    await _message(platform, taxes, bob, '=HYPERLINK("http://evil") how do I file?')
    return {"alice": alice, "bob": bob, "trip": str(trip), "taxes": str(taxes)}


async def test_admin_lists_everyones_conversations(client, admin, world):
    response = await client.get("/api/v1/admin/conversations", headers=admin.headers)
    assert response.status_code == 200
    titles = [c["title"] for c in response.json()["items"]]
    assert titles == ["Tax questions", "Holiday trip to Lisbon"]


async def test_conversation_full_text_search(client, admin, world):
    response = await client.get(
        "/api/v1/admin/conversations", params={"q": "lisbon"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["items"]] == [world["trip"]]


async def test_conversation_filters_owner_model_and_deleted(client, platform, admin, world):
    await _conversation(platform, world["alice"], "gone", deleted=True)
    by_owner = await client.get(
        "/api/v1/admin/conversations",
        params={"owner_id": world["bob"].id},
        headers=admin.headers,
    )
    assert [c["id"] for c in by_owner.json()["items"]] == [world["taxes"]]
    by_model = await client.get(
        "/api/v1/admin/conversations", params={"model_id": str(MODEL_B)}, headers=admin.headers
    )
    assert [c["id"] for c in by_model.json()["items"]] == [world["taxes"]]
    everything = await client.get("/api/v1/admin/conversations", headers=admin.headers)
    assert any(c["deleted_at"] for c in everything.json()["items"])
    live = await client.get(
        "/api/v1/admin/conversations", params={"include_deleted": "false"}, headers=admin.headers
    )
    assert all(c["deleted_at"] is None for c in live.json()["items"])
    assert len(live.json()["items"]) == 2


async def test_message_search_by_text(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages", params={"q": "museums"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["items"]] == [
        "Which museums should I visit in Lisbon?"
    ]


async def test_message_filters_role_model_and_author(client, admin, world):
    assistant = await client.get(
        "/api/v1/admin/messages", params={"role": "assistant"}, headers=admin.headers
    )
    assert [m["content"] for m in assistant.json()["items"]] == ["Try the tile museum."]
    by_model = await client.get(
        "/api/v1/admin/messages", params={"model_id": str(MODEL_A)}, headers=admin.headers
    )
    assert [m["role"] for m in by_model.json()["items"]] == ["assistant"]
    by_author = await client.get(
        "/api/v1/admin/messages", params={"author_id": world["bob"].id}, headers=admin.headers
    )
    assert [m["conversation_id"] for m in by_author.json()["items"]] == [world["taxes"]]


async def test_message_date_range(client, platform, admin, world):
    old = datetime(2026, 3, 1, tzinfo=UTC)
    await _message(platform, uuid.UUID(world["trip"]), world["alice"], "from march", at=old)
    response = await client.get(
        "/api/v1/admin/messages",
        params={"since": "2026-02-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["items"]] == ["from march"]


async def test_inverted_date_range_is_empty(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages",
        params={"since": "2026-04-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_unknown_role_is_422(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages", params={"role": "system"}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "role"


async def test_message_pages_follow_the_cursor(client, admin, world):
    first = (
        await client.get("/api/v1/admin/messages", params={"limit": 2}, headers=admin.headers)
    ).json()
    assert len(first["items"]) == 2
    second = (
        await client.get(
            "/api/v1/admin/messages",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=admin.headers,
        )
    ).json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    seen = {m["id"] for m in first["items"]} | {m["id"] for m in second["items"]}
    assert len(seen) == 3


async def test_messages_export_csv(client, admin, world):
    response = await client.get("/api/v1/admin/messages/export", headers=admin.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3
    assert set(rows[0]) >= {"id", "conversation_id", "role", "author_id", "content", "model_id"}
    contents = {row["content"] for row in rows}
    assert "Which museums should I visit in Lisbon?" in contents
    # A formula is defused for spreadsheets.
    assert '\'=HYPERLINK("http://evil") how do I file?' in contents


async def test_messages_export_applies_filters(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages/export", params={"q": "tile"}, headers=admin.headers
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["role"], r["content"]) for r in rows] == [("assistant", "Try the tile museum.")]


async def test_export_streams_every_batch(client, platform, admin, world, monkeypatch):
    from services.inference.moderation import service

    monkeypatch.setattr(service, "EXPORT_BATCH", 2)
    for n in range(3):
        await _message(platform, uuid.UUID(world["taxes"]), world["bob"], f"extra {n}")
    response = await client.get("/api/v1/admin/messages/export", headers=admin.headers)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    assert len({r["id"] for r in rows}) == 6


async def test_conversations_export_csv(client, admin, world):
    response = await client.get(
        "/api/v1/admin/conversations/export", params={"q": "tax"}, headers=admin.headers
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["id"], r["title"], r["owner_id"]) for r in rows] == [
        (world["taxes"], "Tax questions", world["bob"].id)
    ]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/admin/conversations",
        "/api/v1/admin/conversations/export",
        "/api/v1/admin/messages",
        "/api/v1/admin/messages/export",
    ],
)
async def test_non_admins_are_refused(client, world, url):
    response = await client.get(url, headers=world["alice"].headers)
    assert response.status_code == 403


async def test_anonymous_is_401(client):
    response = await client.get("/api/v1/admin/messages")
    assert response.status_code == 401


async def test_messages_name_their_author_and_conversation(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages", params={"q": "museums"}, headers=admin.headers
    )
    assert response.status_code == 200
    [message] = response.json()["items"]
    assert message["author_username"] == world["alice"].username
    assert message["conversation_title"] == "Holiday trip to Lisbon"


async def test_message_author_of_a_deleted_account_is_null(client, platform, admin, world):
    ghost = uuid.uuid4()
    async with session_scope(platform.sessionmaker) as session:
        session.add(
            Message(
                conversation_id=uuid.UUID(world["taxes"]),
                role="user",
                author_id=ghost,
                content="left behind",
                parameters={},
            )
        )
    response = await client.get(
        "/api/v1/admin/messages", params={"q": "behind"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["author_username"] is None


async def test_message_filter_by_model_ref(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages", params={"model_ref": "Someone/Model"}, headers=admin.headers
    )
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["items"]] == ["Try the tile museum."]


async def test_malformed_model_ref_is_422(client, admin, world):
    response = await client.get(
        "/api/v1/admin/messages", params={"model_ref": "no-slash"}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "model_ref"


async def test_message_export_keeps_its_columns(client, admin, world):
    response = await client.get("/api/v1/admin/messages/export", headers=admin.headers)
    assert response.status_code == 200
    header = next(csv.reader(io.StringIO(response.text)))
    assert "author_username" not in header
