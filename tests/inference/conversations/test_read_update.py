"""Reading a conversation with its tree; renaming, settings, the current branch, titles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.inference.conversations.service import title_from
from tests.factories import user_session
from tests.inference.conversations.conftest import BASE, add_message, create_conversation

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _tree(platform, conversation_id):
    """user -> answer A; answer A regenerated as B (sibling); an edit of the first turn."""
    ids = {}
    ids["q"] = await add_message(platform, conversation_id, "What is a lighthouse?", created_at=T0)
    ids["a"] = await add_message(
        platform,
        conversation_id,
        "A tower with a light.",
        role="assistant",
        parent_id=ids["q"],
        created_at=T0 + timedelta(seconds=1),
        model_ref="owner/tiny",
        status="complete",
        prompt_tokens=12,
        completion_tokens=6,
        time_to_first_token_ms=20.5,
        latency_ms=80.0,
        tokens_per_second=75.0,
        finish_reason="stop",
    )
    ids["b"] = await add_message(
        platform,
        conversation_id,
        "It guides ships.",
        role="assistant",
        parent_id=ids["q"],
        created_at=T0 + timedelta(seconds=2),
    )
    ids["q2"] = await add_message(
        platform, conversation_id, "What is a lamp?", created_at=T0 + timedelta(seconds=3)
    )
    return ids


async def test_get_returns_the_tree_and_the_current_path(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"], title="Tree")
    ids = await _tree(platform, conversation["id"])
    await client.put(
        f"{BASE}/{conversation['id']}/current",
        json={"message_id": ids["a"]},
        headers=owner.headers,
    )
    response = await client.get(f"{BASE}/{conversation['id']}", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert [m["id"] for m in body["messages"]] == [ids["q"], ids["a"], ids["b"], ids["q2"]]
    assert body["current_message_id"] == ids["a"]
    assert body["current_path"] == [ids["q"], ids["a"]]
    answer = body["messages"][1]
    assert answer["parent_id"] == ids["q"]
    assert answer["role"] == "assistant"
    assert answer["model_ref"] == "owner/tiny"
    assert answer["prompt_tokens"] == 12
    assert answer["completion_tokens"] == 6
    assert answer["time_to_first_token_ms"] == 20.5
    assert answer["tokens_per_second"] == 75.0
    assert answer["finish_reason"] == "stop"


async def test_choosing_a_message_follows_it_to_its_newest_leaf(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    q = await add_message(platform, conversation["id"], "hi", created_at=T0)
    a = await add_message(
        platform, conversation["id"], "hello", role="assistant", parent_id=q, created_at=T0
    )
    follow_up = await add_message(
        platform, conversation["id"], "more", parent_id=a, created_at=T0 + timedelta(seconds=5)
    )
    await add_message(
        platform, conversation["id"], "other", parent_id=None, created_at=T0 + timedelta(1)
    )
    response = await client.put(
        f"{BASE}/{conversation['id']}/current", json={"message_id": q}, headers=owner.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["current_message_id"] == follow_up
    assert body["current_path"] == [q, a, follow_up]


async def test_a_message_of_another_conversation_is_404(client, platform, owner, llama):
    mine = await create_conversation(client, owner, llama["ref"])
    other = await create_conversation(client, owner, llama["ref"])
    elsewhere = await add_message(platform, other["id"], "elsewhere")
    response = await client.put(
        f"{BASE}/{mine['id']}/current", json={"message_id": elsewhere}, headers=owner.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"


async def test_setting_the_branch_needs_a_message_id(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.put(
        f"{BASE}/{conversation['id']}/current", json={"message_id": "x"}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "message_id"


async def test_rename_and_change_the_settings(client, owner, llama):
    conversation = await create_conversation(
        client, owner, llama["ref"], system_prompt="old", parameters={"temperature": 1.0}
    )
    response = await client.patch(
        f"{BASE}/{conversation['id']}",
        json={"title": "Renamed", "system_prompt": "Be brief.", "parameters": {"top_k": 5}},
        headers=owner.headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Renamed"
    assert body["system_prompt"] == "Be brief."
    assert body["parameters"] == {"top_k": 5}


async def test_unsent_fields_stay_and_null_clears_the_system_prompt(client, owner, llama):
    conversation = await create_conversation(
        client, owner, llama["ref"], title="Keep", system_prompt="gone soon"
    )
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"system_prompt": None}, headers=owner.headers
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Keep"
    assert response.json()["system_prompt"] is None


async def test_a_null_title_is_422(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"title": None}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "title"


async def test_bad_parameters_in_a_change_are_422(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}",
        json={"parameters": {"temperature": 9}},
        headers=owner.headers,
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "parameters.temperature"


async def test_a_participant_may_not_change_the_settings(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await client.post(
        f"{BASE}/{conversation['id']}/participants",
        json={"username": friend.username, "role": "write"},
        headers=owner.headers,
    )
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"title": "mine now"}, headers=friend.headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "owner_only"


def test_title_from_takes_the_opening_words():
    assert title_from("  Tell me\nabout   lighthouses ") == "Tell me about lighthouses"
    long = "word " * 40
    derived = title_from(long)
    assert derived.endswith("…")
    assert len(derived) <= 61
    assert " " not in derived[-2:]
    assert title_from("   ") == "Untitled conversation"


async def test_an_unknown_conversation_is_404(client, owner):
    response = await client.get(f"{BASE}/{uuid.uuid4()}", headers=owner.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"
