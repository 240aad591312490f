"""Switching the model mid-conversation; models that go away later."""

from __future__ import annotations

from tests.factories import user_session
from tests.inference.conftest import ready_model
from tests.inference.conversations.conftest import BASE, add_message, create_conversation


async def test_switch_changes_the_model_of_later_turns(
    client, platform, owner, llama, tiny_llama_dir
):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    conversation = await create_conversation(client, owner, llama["ref"])
    await add_message(platform, conversation["id"], "hi", role="assistant", model_ref=llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": other["ref"]}, headers=owner.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_id"] == other["id"]
    assert body["model_ref"] == other["ref"]
    # Earlier turns keep the model that produced them.
    assert body["messages"][0]["model_ref"] == llama["ref"]


async def test_switching_to_an_unknown_model_is_404(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": "owner/missing"}, headers=owner.headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"
    unchanged = await client.get(f"{BASE}/{conversation['id']}", headers=owner.headers)
    assert unchanged.json()["model_ref"] == llama["ref"]


async def test_switching_to_a_model_not_ready_is_409(
    client, platform, owner, llama, tiny_llama_dir
):
    pending = await ready_model(platform, owner, tiny_llama_dir, slug="wip", status="validating")
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": pending["ref"]}, headers=owner.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "model_not_ready"


async def test_switch_checks_max_tokens_against_the_new_model(client, platform, owner, llama):
    limit = platform.apps["inference"].state.inference.settings.max_tokens_limit
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}",
        json={"model": llama["ref"], "parameters": {"max_tokens": limit + 1}},
        headers=owner.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "max_tokens_too_large"


async def test_a_null_model_is_422(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": None}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "model"


async def test_history_stays_readable_when_the_model_turns_private(client, platform, owner, llama):
    user = await user_session(client)
    conversation = await create_conversation(client, user, llama["ref"], title="Kept")
    await add_message(platform, conversation["id"], "still here")
    hidden = await client.patch(
        f"/api/v1/models/{llama['id']}", json={"visibility": "private"}, headers=owner.headers
    )
    assert hidden.status_code == 200, hidden.text
    response = await client.get(f"{BASE}/{conversation['id']}", headers=user.headers)
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["messages"]] == ["still here"]
    listed = await client.get("/api/v1/conversations", headers=user.headers)
    assert listed.json()["groups"][0]["items"][0]["title"] == "Kept"
    renamed = await client.patch(
        f"{BASE}/{conversation['id']}", json={"title": "Renamed"}, headers=user.headers
    )
    assert renamed.status_code == 200
    # Switching back to it is refused like any model the caller may not use.
    back = await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": llama["ref"]}, headers=user.headers
    )
    assert back.status_code == 404
    assert back.json()["code"] == "model_not_found"


async def test_parameters_still_change_after_the_model_is_deleted(client, platform, owner, llama):
    user = await user_session(client)
    conversation = await create_conversation(client, user, llama["ref"])
    deleted = await client.delete(f"/api/v1/models/{llama['id']}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    response = await client.patch(
        f"{BASE}/{conversation['id']}",
        json={"parameters": {"temperature": 0.2}},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["parameters"] == {"temperature": 0.2}
