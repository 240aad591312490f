"""Import: a JSON export read back as a new conversation of the caller (export -> import keeps
every message, its tree, role, content and metadata); bad documents refused with what is wrong."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import user_session
from tests.inference.conftest import ready_model
from tests.inference.conversations.test_export import _conversation_with_branches

BASE = "/api/v1/conversations"
IMPORT = f"{BASE}/import"
# What identifies a message in its conversation, not what it says.
_IDENTITY = {"id", "parent_id", "author_id", "updated_at"}


async def _export(client, user, conversation_id: str) -> dict[str, Any]:
    response = await client.get(f"{BASE}/{conversation_id}/export", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _tree(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each message as (its content and metadata, its parent's position in the list)."""
    position = {m["id"]: n for n, m in enumerate(document["messages"])}
    return [
        (
            {k: v for k, v in m.items() if k not in _IDENTITY},
            position.get(m["parent_id"]),
        )
        for m in document["messages"]
    ]


def _document(llama: dict[str, Any], messages: list[dict[str, Any]], **conversation: Any):
    return {
        "format": "llmnet.conversation",
        "version": 1,
        "conversation": {"model_ref": llama["ref"], **conversation},
        "messages": messages,
    }


def _turn(role: str, content: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "parent_id": parent,
        "role": role,
        "content": content,
        **fields,
    }


async def test_export_then_import_round_trips_the_tree_and_metadata(client, platform, owner, llama):
    conversation, _, _ = await _conversation_with_branches(client, platform, owner, llama)
    exported = await _export(client, owner, conversation["id"])

    friend = await user_session(client)
    response = await client.post(IMPORT, json=exported, headers=friend.headers)
    assert response.status_code == 201, response.text
    imported = response.json()
    assert imported["id"] != conversation["id"]
    assert imported["owner_id"] == friend.id
    assert imported["role"] == "owner"
    assert imported["title"] == "Lighthouses"
    assert imported["system_prompt"] == "You are a keeper."
    assert imported["parameters"] == {"temperature": 0.5, "stop": ["END"], "seed": 3}
    assert {m["id"] for m in imported["messages"]}.isdisjoint(
        {m["id"] for m in exported["messages"]}
    )
    assert all(m["author_id"] == friend.id for m in imported["messages"])

    again = await _export(client, friend, imported["id"])
    assert _tree(again) == _tree(exported)
    assert again["participants"] == []  # sharing is the new owner's choice
    # The current branch is the same branch: the exported leaf's position.
    leaf = [m["id"] for m in exported["messages"]].index(
        exported["conversation"]["current_message_id"]
    )
    assert again["conversation"]["current_message_id"] == again["messages"][leaf]["id"]
    # The original is untouched, and the import is the friend's alone.
    assert (await client.get(f"{BASE}/{imported['id']}", headers=owner.headers)).status_code == 404


async def test_an_import_can_be_continued_and_is_recorded_as_activity(client, owner, llama):
    question = _turn("user", "Why a lighthouse?")
    answer = _turn("assistant", "So ships see the rocks.", question["id"], status="complete")
    response = await client.post(
        IMPORT,
        json=_document(llama, [question, answer], parameters={"temperature": 0.0}),
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    imported = response.json()
    assert imported["title"] == "Why a lighthouse?"  # from the first user message
    assert imported["current_message_id"] == imported["messages"][1]["id"]

    turn = await client.post(
        f"{BASE}/{imported['id']}/messages",
        json={"content": "And at night?", "parameters": {"max_tokens": 4}, "stream": False},
        headers=owner.headers,
    )
    assert turn.status_code in (200, 201), turn.text
    assert turn.json()["user_message"]["parent_id"] == imported["messages"][1]["id"]

    records = (await client.get("/api/v1/activity", headers=owner.headers)).json()["items"]
    created = [r for r in records if r["conversation_id"] == imported["id"]]
    assert created[-1]["action"] == "conversation.created"
    assert created[-1]["details"]["imported"] is True
    assert created[-1]["details"]["messages"] == 2


async def test_bad_documents_are_refused_saying_what_is_wrong(client, owner, llama):
    first = _turn("user", "Hello")
    cases = [
        (
            [first, _turn("assistant", "Hi", str(uuid.uuid4()))],
            "messages.1.parent_id",
            "earlier message",
        ),
        ([first, _turn("user", "Again", first["id"])], "messages.1.parent_id", "must follow"),
        ([_turn("assistant", "Hi")], "messages.0.parent_id", "must follow"),
        ([first, {**first}], "messages.1.id", "appears twice"),
        (
            [first, _turn("assistant", "Hal", first["id"], status="streaming")],
            "messages.1.status",
            "streaming",
        ),
    ]
    for messages, field, words in cases:
        response = await client.post(IMPORT, json=_document(llama, messages), headers=owner.headers)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "invalid_conversation_document"
        assert body["fields"][0]["field"] == field
        assert words in body["detail"]

    leaf = await client.post(
        IMPORT,
        json=_document(llama, [first], current_message_id=str(uuid.uuid4())),
        headers=owner.headers,
    )
    assert leaf.status_code == 422
    assert leaf.json()["fields"][0]["field"] == "conversation.current_message_id"

    not_an_export = await client.post(IMPORT, json={"messages": []}, headers=owner.headers)
    assert not_an_export.status_code == 422
    fields = {f["field"] for f in not_an_export.json()["fields"]}
    assert {"format", "version", "conversation"} <= fields

    template = await client.post(
        IMPORT, json=_document(llama, [first], template_id=str(uuid.uuid4())), headers=owner.headers
    )
    assert template.status_code == 422
    assert template.json()["fields"][0]["field"] == "conversation.template_id"


async def test_the_model_must_be_usable_and_the_size_is_capped(
    client, platform, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    stranger = await user_session(client)
    hidden = await client.post(
        IMPORT, json=_document(secret, [_turn("user", "Hi")]), headers=stranger.headers
    )
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "model_not_found"
    assert (await client.get(BASE, headers=stranger.headers)).json()["groups"] == []

    big = "x" * 200_000
    messages = [_turn("user", big)]
    for n in range(20):
        role = "assistant" if n % 2 == 0 else "user"
        messages.append(_turn(role, big, messages[-1]["id"]))
    too_big = await client.post(IMPORT, json=_document(llama, messages), headers=owner.headers)
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "conversation_document_too_large"

    anonymous = await client.post(IMPORT, json=_document(llama, []))
    assert anonymous.status_code == 401


async def test_import_is_not_taken_for_a_conversation_id(client, owner):
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, IMPORT, json={}, headers=owner.headers)
        assert response.status_code == 405, (method, response.text)
        assert response.headers["allow"] == "POST"
    malformed = await client.get(f"{BASE}/not-a-uuid", headers=owner.headers)
    assert malformed.status_code == 422
