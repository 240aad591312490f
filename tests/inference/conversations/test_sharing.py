"""Sharing: participants by username with read or write roles; everyone else gets 404."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import user_session
from tests.inference.conversations.conftest import BASE, add_message, create_conversation


async def _share(client, owner, conversation_id, username, role="read"):
    return await client.post(
        f"{BASE}/{conversation_id}/participants",
        json={"username": username, "role": role},
        headers=owner.headers,
    )


async def test_owner_adds_a_reader_who_can_read(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"], title="Shared")
    await add_message(platform, conversation["id"], "hello")
    friend = await user_session(client)
    response = await _share(client, owner, conversation["id"], friend.username.upper())
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == friend.username
    assert body["user_id"] == friend.id
    assert body["role"] == "read"
    read = await client.get(f"{BASE}/{conversation['id']}", headers=friend.headers)
    assert read.status_code == 200
    assert read.json()["role"] == "read"
    assert [m["content"] for m in read.json()["messages"]] == ["hello"]


async def test_participants_are_listed_to_everyone_in_it(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    reader, writer = await user_session(client), await user_session(client)
    await _share(client, owner, conversation["id"], reader.username)
    await _share(client, owner, conversation["id"], writer.username, "write")
    response = await client.get(f"{BASE}/{conversation['id']}/participants", headers=reader.headers)
    assert response.status_code == 200
    assert [(p["username"], p["role"]) for p in response.json()] == [
        (reader.username, "read"),
        (writer.username, "write"),
    ]


async def test_a_reader_may_not_choose_the_branch(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    message = await add_message(platform, conversation["id"], "hi")
    reader = await user_session(client)
    await _share(client, owner, conversation["id"], reader.username)
    response = await client.put(
        f"{BASE}/{conversation['id']}/current", json={"message_id": message}, headers=reader.headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "read_only_participant"


async def test_a_writer_may_choose_the_branch(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    first = await add_message(platform, conversation["id"], "one")
    await add_message(platform, conversation["id"], "two")
    writer = await user_session(client)
    await _share(client, owner, conversation["id"], writer.username, "write")
    response = await client.put(
        f"{BASE}/{conversation['id']}/current", json={"message_id": first}, headers=writer.headers
    )
    assert response.status_code == 200
    assert response.json()["current_message_id"] == first


async def test_sharing_again_changes_the_role(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await _share(client, owner, conversation["id"], friend.username)
    response = await _share(client, owner, conversation["id"], friend.username, "write")
    assert response.status_code == 200
    assert response.json()["role"] == "write"


async def test_the_owner_changes_a_role(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await _share(client, owner, conversation["id"], friend.username, "write")
    response = await client.patch(
        f"{BASE}/{conversation['id']}/participants/{friend.username}",
        json={"role": "read"},
        headers=owner.headers,
    )
    assert response.status_code == 200
    assert response.json()["role"] == "read"
    shown = await client.get(f"{BASE}/{conversation['id']}", headers=friend.headers)
    assert shown.json()["role"] == "read"


async def test_changing_someone_not_in_it_is_404(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}/participants/nobody",
        json={"role": "read"},
        headers=owner.headers,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "participant_not_found"


async def test_a_removed_participant_gets_404(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend = await user_session(client)
    await _share(client, owner, conversation["id"], friend.username)
    removed = await client.delete(
        f"{BASE}/{conversation['id']}/participants/{friend.username}", headers=owner.headers
    )
    assert removed.status_code == 204
    response = await client.get(f"{BASE}/{conversation['id']}", headers=friend.headers)
    assert response.status_code == 404


async def test_a_participant_may_leave_but_not_remove_others(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    one, two = await user_session(client), await user_session(client)
    await _share(client, owner, conversation["id"], one.username, "write")
    await _share(client, owner, conversation["id"], two.username)
    refused = await client.delete(
        f"{BASE}/{conversation['id']}/participants/{two.username}", headers=one.headers
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "owner_only"
    left = await client.delete(
        f"{BASE}/{conversation['id']}/participants/{one.username}", headers=one.headers
    )
    assert left.status_code == 204
    assert (
        await client.get(f"{BASE}/{conversation['id']}", headers=one.headers)
    ).status_code == 404


async def test_a_participant_may_not_share_further(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    friend, other = await user_session(client), await user_session(client)
    await _share(client, owner, conversation["id"], friend.username, "write")
    response = await _share(client, friend, conversation["id"], other.username)
    assert response.status_code == 403
    assert response.json()["code"] == "owner_only"


async def test_sharing_with_an_unknown_user_is_404(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await _share(client, owner, conversation["id"], "ghost")
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


async def test_sharing_with_the_owner_is_409(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await _share(client, owner, conversation["id"], owner.username)
    assert response.status_code == 409
    assert response.json()["code"] == "participant_is_owner"


@pytest.mark.parametrize(
    "body",
    [{"username": "bad name"}, {"username": "x", "role": "admin"}, {"role": "read"}],
)
async def test_bad_participant_bodies_are_422(client, owner, llama, body):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.post(
        f"{BASE}/{conversation['id']}/participants", json=body, headers=owner.headers
    )
    assert response.status_code == 422


async def test_every_route_is_404_to_a_stranger(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    message = await add_message(platform, conversation["id"], "private")
    friend, stranger = await user_session(client), await user_session(client)
    await _share(client, owner, conversation["id"], friend.username)
    base = f"{BASE}/{conversation['id']}"
    calls = [
        ("GET", base, None),
        ("PATCH", base, {"title": "mine"}),
        ("PUT", f"{base}/current", {"message_id": message}),
        ("DELETE", base, None),
        ("POST", f"{base}/restore", None),
        ("GET", f"{base}/export", None),
        ("GET", f"{base}/export?format=markdown", None),
        ("GET", f"{base}/participants", None),
        ("POST", f"{base}/participants", {"username": stranger.username}),
        ("PATCH", f"{base}/participants/{friend.username}", {"role": "write"}),
        ("DELETE", f"{base}/participants/{friend.username}", None),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=stranger.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["code"] == "conversation_not_found"
    listed = await client.get(BASE, headers=stranger.headers)
    assert listed.json()["groups"] == []
    still = await client.get(base, headers=owner.headers)
    assert still.status_code == 200
    assert still.json()["title"] == ""


async def test_every_route_is_404_once_deleted(client, platform, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    await client.delete(f"{BASE}/{conversation['id']}", headers=owner.headers)
    base = f"{BASE}/{conversation['id']}"
    for method, url, body in [
        ("GET", base, None),
        ("PATCH", base, {"title": "x"}),
        ("DELETE", base, None),
        ("GET", f"{base}/export", None),
        ("GET", f"{base}/participants", None),
    ]:
        response = await client.request(method, url, json=body, headers=owner.headers)
        assert response.status_code == 404, (method, url)


async def test_a_malformed_id_is_422(client, owner):
    response = await client.get(f"{BASE}/not-a-uuid", headers=owner.headers)
    assert response.status_code == 422
    unknown = await client.get(f"{BASE}/{uuid.uuid4()}/participants", headers=owner.headers)
    assert unknown.status_code == 404
