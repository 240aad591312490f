"""Regenerate and edit: siblings in the tree, the current branch, the context that follows it."""

from __future__ import annotations

from tests.inference.conftest import ready_model
from tests.inference.messages.conftest import chat_ids, new_conversation, send


async def _conversation(client, owner, conversation_id):
    response = await client.get(f"/api/v1/conversations/{conversation_id}", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_regenerate_makes_a_sibling_and_follows_it(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    first = (await send(client, owner, conversation["id"], content="hello")).json()
    old = first["message"]
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/{old['id']}/regenerate",
        headers=owner.headers,
        json={"parameters": {"temperature": 1.0, "seed": 7, "max_tokens": 4}, "stream": False},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_message"] is None
    new = body["message"]
    assert new["id"] != old["id"]
    assert new["parent_id"] == old["parent_id"] == first["user_message"]["id"]
    assert new["parameters"] == {"temperature": 1.0, "seed": 7, "max_tokens": 4}
    assert new["completion_tokens"] <= 4
    read = await _conversation(client, owner, conversation["id"])
    assert read["current_message_id"] == new["id"]
    assert read["current_path"] == [first["user_message"]["id"], new["id"]]
    assert {m["id"] for m in read["messages"]} >= {old["id"], new["id"]}


async def test_edit_branches_and_context_follows_the_current_path(
    client, owner, llama, prompts, tiny_tokenizer
):
    conversation = await new_conversation(client, owner, llama)
    cid = conversation["id"]
    one = (await send(client, owner, cid, content="one")).json()
    two = (await send(client, owner, cid, content="two")).json()
    # Editing "two": a new user message with the same parent, a sibling of it.
    edited = (
        await send(client, owner, cid, content="two, edited", parent_id=one["message"]["id"])
    ).json()
    assert edited["user_message"]["parent_id"] == two["user_message"]["parent_id"]
    three = (await send(client, owner, cid, content="three")).json()
    assert three["user_message"]["parent_id"] == edited["message"]["id"]
    expected = chat_ids(
        tiny_tokenizer,
        [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": one["message"]["content"]},
            {"role": "user", "content": "two, edited"},
            {"role": "assistant", "content": edited["message"]["content"]},
            {"role": "user", "content": "three"},
        ],
    )
    assert prompts[three["message"]["id"]] == expected


async def test_chosen_branch_is_the_next_context(client, owner, llama, prompts, tiny_tokenizer):
    conversation = await new_conversation(client, owner, llama)
    cid = conversation["id"]
    first = (await send(client, owner, cid, content="left")).json()
    await send(client, owner, cid, content="right", parent_id=None)
    response = await client.put(
        f"/api/v1/conversations/{cid}/current",
        headers=owner.headers,
        json={"message_id": first["message"]["id"]},
    )
    assert response.status_code == 200, response.text
    after = (await send(client, owner, cid, content="more")).json()
    assert after["user_message"]["parent_id"] == first["message"]["id"]
    expected = chat_ids(
        tiny_tokenizer,
        [
            {"role": "user", "content": "left"},
            {"role": "assistant", "content": first["message"]["content"]},
            {"role": "user", "content": "more"},
        ],
    )
    assert prompts[after["message"]["id"]] == expected


async def test_switching_model_records_the_new_model(
    client, platform, owner, llama, tiny_llama_dir
):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="other")
    conversation = await new_conversation(client, owner, llama)
    cid = conversation["id"]
    before = (await send(client, owner, cid, content="hi")).json()["message"]
    response = await client.patch(
        f"/api/v1/conversations/{cid}", headers=owner.headers, json={"model": other["ref"]}
    )
    assert response.status_code == 200, response.text
    after = (await send(client, owner, cid, content="again")).json()["message"]
    assert before["model_id"] == llama["id"]
    assert after["model_id"] == other["id"]
    assert after["model_ref"] == other["ref"]
    assert after["model_version_id"] == other["version_id"]


async def test_regenerate_with_another_model(client, platform, owner, llama, tiny_llama_dir):
    other = await ready_model(platform, owner, tiny_llama_dir, slug="second")
    conversation = await new_conversation(client, owner, llama)
    old = (await send(client, owner, conversation["id"], content="hi")).json()["message"]
    response = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages/{old['id']}/regenerate",
        headers=owner.headers,
        json={"model": other["ref"], "stream": False},
    )
    assert response.status_code == 200, response.text
    assert response.json()["message"]["model_id"] == other["id"]
    read = await _conversation(client, owner, conversation["id"])
    assert read["model_id"] == llama["id"]  # the conversation keeps its model


async def test_first_message_titles_an_untitled_conversation(client, owner, llama):
    conversation = await new_conversation(client, owner, llama)
    assert conversation["title"] == ""
    await send(client, owner, conversation["id"], content="Planning a trip to Lisbon")
    read = await _conversation(client, owner, conversation["id"])
    assert read["title"] == "Planning a trip to Lisbon"


async def test_a_given_title_is_kept_and_a_derived_one_stays(client, owner, llama):
    given = await new_conversation(client, owner, llama, title="Given")
    await send(client, owner, given["id"], content="Planning a trip to Lisbon")
    read = await _conversation(client, owner, given["id"])
    assert read["title"] == "Given"
    untitled = await new_conversation(client, owner, llama)
    first = await send(client, owner, untitled["id"], content="Planning a trip to Lisbon")
    await send(client, owner, untitled["id"], content="What about Porto?")
    read = await _conversation(client, owner, untitled["id"])
    assert read["title"] == "Planning a trip to Lisbon"
    # Later turns move the current branch along (the next turn follows the newest answer).
    assert read["current_message_id"] != first.json()["message"]["id"]
    assert read["current_message_id"] == read["messages"][-1]["id"]
