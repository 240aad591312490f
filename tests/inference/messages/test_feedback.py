"""Thumbs on answers, and what a model's owner sees of them."""

from __future__ import annotations

from tests.factories import user_session
from tests.inference.messages.conftest import new_conversation, send


async def _answer(client, user, model):
    conversation = await new_conversation(client, user, model)
    answer = (await send(client, user, conversation["id"], content="hi")).json()["message"]
    return f"/api/v1/conversations/{conversation['id']}/messages/{answer['id']}/feedback", answer


async def test_rating_is_set_replaced_and_taken_back(client, owner, llama):
    url, answer = await _answer(client, owner, llama)
    response = await client.put(url, headers=owner.headers, json={"rating": "up"})
    assert response.status_code == 200, response.text
    assert response.json()["rating"] == "up"
    assert response.json()["message_id"] == answer["id"]
    response = await client.put(
        url, headers=owner.headers, json={"rating": "down", "comment": "off topic"}
    )
    assert response.status_code == 200
    assert response.json()["rating"] == "down"
    assert response.json()["comment"] == "off topic"
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    again = await client.delete(url, headers=owner.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "feedback_not_found"


async def test_bad_rating_is_422(client, owner, llama):
    url, _ = await _answer(client, owner, llama)
    response = await client.put(url, headers=owner.headers, json={"rating": "meh"})
    assert response.status_code == 422


async def test_owner_sees_the_aggregate_per_version(client, owner, llama):
    for thumbs in ("up", "up", "down"):
        user = await user_session(client)
        url, _ = await _answer(client, user, llama)
        body = {"rating": thumbs, "comment": "why" if thumbs == "down" else None}
        assert (await client.put(url, headers=user.headers, json=body)).status_code == 200
    response = await client.get(
        "/api/v1/conversations/feedback/summary",
        headers=owner.headers,
        params={"model": llama["ref"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_id"] == llama["id"]
    assert body["versions"] == [
        {"model_version_id": llama["version_id"], "up": 2, "down": 1, "comments": 1}
    ]


async def test_others_do_not_see_a_models_feedback(client, llama):
    user = await user_session(client)
    response = await client.get(
        "/api/v1/conversations/feedback/summary",
        headers=user.headers,
        params={"model": llama["ref"]},
    )
    assert response.status_code == 404


async def test_a_conversation_read_carries_the_callers_own_rating(client, owner, llama):
    url, answer = await _answer(client, owner, llama)
    conversation_url = url.split("/messages/")[0]
    body = {"rating": "down", "comment": "too short"}
    assert (await client.put(url, headers=owner.headers, json=body)).status_code == 200
    response = await client.get(conversation_url, headers=owner.headers)
    assert response.status_code == 200
    by_id = {m["id"]: m for m in response.json()["messages"]}
    assert by_id[answer["id"]]["feedback"] == body
    assert all(m["feedback"] is None for i, m in by_id.items() if i != answer["id"])
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    response = await client.get(conversation_url, headers=owner.headers)
    assert {m["id"]: m for m in response.json()["messages"]}[answer["id"]]["feedback"] is None


async def test_another_users_feedback_routes_are_404(client, owner, llama):
    url, _ = await _answer(client, owner, llama)
    stranger = await user_session(client)
    response = await client.put(url, headers=stranger.headers, json={"rating": "up"})
    assert response.status_code == 404
    assert (await client.delete(url, headers=stranger.headers)).status_code == 404


async def test_a_participant_sees_their_own_rating_not_the_owners(client, owner, llama):
    url, answer = await _answer(client, owner, llama)
    conversation_url = url.split("/messages/")[0]
    friend = await user_session(client)
    shared = await client.post(
        f"{conversation_url}/participants",
        headers=owner.headers,
        json={"username": friend.username, "role": "read"},
    )
    assert shared.status_code == 201, shared.text
    assert (await client.put(url, headers=owner.headers, json={"rating": "up"})).status_code == 200
    response = await client.get(conversation_url, headers=friend.headers)
    assert response.status_code == 200
    assert {m["id"]: m for m in response.json()["messages"]}[answer["id"]]["feedback"] is None
