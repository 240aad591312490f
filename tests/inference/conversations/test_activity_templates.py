"""What conversation management records as activity, and prompt templates on a conversation."""

from __future__ import annotations

from services.inference.prompt_templates.builtin import BUILTIN_TEMPLATES
from tests.factories import user_session
from tests.inference.conftest import ready_model
from tests.inference.conversations.conftest import BASE, create_conversation


async def _actions(client, user):
    response = await client.get("/api/v1/activity", headers=user.headers)
    assert response.status_code == 200, response.text
    return [(r["action"], r["conversation_id"], r["details"]) for r in response.json()["items"]]


async def test_create_switch_export_delete_are_recorded(
    client, platform, owner, llama, tiny_llama_dir
):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    conversation = await create_conversation(client, owner, llama["ref"], title="Logged")
    cid = conversation["id"]
    await client.patch(f"{BASE}/{cid}", json={"model": other["ref"]}, headers=owner.headers)
    await client.get(f"{BASE}/{cid}/export", params={"format": "markdown"}, headers=owner.headers)
    await client.delete(f"{BASE}/{cid}", headers=owner.headers)
    actions = await _actions(client, owner)
    assert [(a, c) for a, c, _ in actions] == [
        ("conversation.deleted", cid),
        ("conversation.exported", cid),
        ("model.switched", cid),
        ("conversation.created", cid),
    ]
    details = {a: d for a, _, d in actions}
    assert details["model.switched"] == {"from": llama["ref"], "to": other["ref"]}
    assert details["conversation.exported"] == {"format": "markdown"}


async def test_switching_to_the_same_model_records_nothing(client, owner, llama):
    conversation = await create_conversation(client, owner, llama["ref"])
    await client.patch(
        f"{BASE}/{conversation['id']}", json={"model": llama["ref"]}, headers=owner.headers
    )
    assert [a for a, _, _ in await _actions(client, owner)] == ["conversation.created"]


async def test_nothing_is_recorded_with_recording_off(client, owner, llama):
    off = await client.put(
        "/api/v1/activity/settings", json={"recording": False}, headers=owner.headers
    )
    assert off.status_code == 200, off.text
    await create_conversation(client, owner, llama["ref"])
    assert await _actions(client, owner) == []


async def test_a_builtin_template_may_be_used(client, owner, llama):
    template = BUILTIN_TEMPLATES[0]
    body = await create_conversation(client, owner, llama["ref"], template_id=str(template.id))
    assert body["template_id"] == str(template.id)


async def test_your_own_template_may_be_used_and_cleared(client, owner, llama):
    made = await client.post(
        "/api/v1/prompt-templates",
        json={"name": "Ask", "body": "Answer: {{ question }}", "variables": ["question"]},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    conversation = await create_conversation(client, owner, llama["ref"])
    response = await client.patch(
        f"{BASE}/{conversation['id']}",
        json={"template_id": made.json()["id"]},
        headers=owner.headers,
    )
    assert response.status_code == 200
    assert response.json()["template_id"] == made.json()["id"]
    cleared = await client.patch(
        f"{BASE}/{conversation['id']}", json={"template_id": None}, headers=owner.headers
    )
    assert cleared.json()["template_id"] is None


async def test_someone_elses_template_is_404(client, owner, llama):
    made = await client.post(
        "/api/v1/prompt-templates",
        json={"name": "Mine", "body": "Hello {{ name }}", "variables": ["name"]},
        headers=owner.headers,
    )
    assert made.status_code == 201, made.text
    user = await user_session(client)
    response = await client.post(
        BASE,
        json={"model": llama["ref"], "template_id": made.json()["id"]},
        headers=user.headers,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "prompt_template_not_found"
