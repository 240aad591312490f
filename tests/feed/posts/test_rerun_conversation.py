"""Re-running a post (same model, prompt, parameters and seed) and continuing a post as a
conversation in the inference service, through the gateway."""

from __future__ import annotations

from tests.factories import user_session
from tests.feed.conftest import publish, ready_model, run_jobs


async def _published(client, ctx, user, model, body):
    response = await client.post("/api/v1/posts", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    assert await run_jobs(ctx) == ["published"]
    return (await client.get(f"/api/v1/posts/{response.json()['id']}")).json()


async def test_a_rerun_writes_a_new_post_from_the_same_prompt_parameters_and_seed(
    client, worker_ctx, owner, llama
):
    original = await _published(
        client,
        worker_ctx,
        owner,
        llama,
        {"model": llama["ref"], "prompt": "Foxes?", "max_tokens": 6, "top_k": 5, "seed": 42},
    )
    reader = await user_session(client)
    response = await client.post(f"/api/v1/posts/{original['id']}/rerun", headers=reader.headers)
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert rerun["id"] != original["id"]
    assert rerun["status"] == "generating"
    assert rerun["author"]["model_id"] == llama["id"]
    assert rerun["prompt"] == "Foxes?"
    assert rerun["parameters"] == original["parameters"] == {"max_tokens": 6, "top_k": 5}
    assert rerun["seed"] == 42
    assert rerun["parent_id"] is None

    assert await run_jobs(worker_ctx) == ["published"]
    written = (await client.get(f"/api/v1/posts/{rerun['id']}")).json()
    # Same model, prompt, parameters and seed: the same text.
    assert written["content"] == original["content"]

    again = await client.post(
        f"/api/v1/posts/{original['id']}/rerun",
        headers={**reader.headers, "Idempotency-Key": "rerun-1"},
    )
    retried = await client.post(
        f"/api/v1/posts/{original['id']}/rerun",
        headers={**reader.headers, "Idempotency-Key": "rerun-1"},
    )
    assert again.status_code == retried.status_code == 202
    assert again.json()["id"] == retried.json()["id"]


async def test_a_reply_is_rerun_as_a_new_reply_to_the_same_post(client, worker_ctx, owner, llama):
    root = await publish(client, worker_ctx, owner, llama)
    reply = await client.post(
        f"/api/v1/posts/{root['id']}/replies",
        json={"model": llama["ref"], "instruction": "Agree.", "max_tokens": 4},
        headers=owner.headers,
    )
    assert reply.status_code == 202
    assert await run_jobs(worker_ctx) == ["published"]
    rerun = await client.post(f"/api/v1/posts/{reply.json()['id']}/rerun", headers=owner.headers)
    assert rerun.status_code == 202, rerun.text
    assert rerun.json()["parent_id"] == root["id"]
    assert rerun.json()["prompt"] == "Agree."
    assert await run_jobs(worker_ctx) == ["published"]
    assert (await client.get(f"/api/v1/posts/{root['id']}")).json()["reply_count"] == 2


async def test_who_may_rerun_and_what(client, platform, worker_ctx, owner, llama, tiny_llama_dir):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    hidden = await publish(client, worker_ctx, owner, secret)
    stranger = await user_session(client)
    refused = await client.post(f"/api/v1/posts/{hidden['id']}/rerun", headers=stranger.headers)
    assert refused.status_code == 404
    assert refused.json()["code"] == "post_not_found"
    assert (await client.post(f"/api/v1/posts/{hidden['id']}/rerun")).status_code == 401

    root = await publish(client, worker_ctx, owner, llama)
    said = await client.post(
        f"/api/v1/posts/{root['id']}/replies", json={"text": "Mine."}, headers=stranger.headers
    )
    person = await client.post(f"/api/v1/posts/{said.json()['id']}/rerun", headers=owner.headers)
    assert person.status_code == 409
    assert person.json()["code"] == "post_not_rerunnable"


async def test_a_post_opens_a_conversation_to_continue(client, worker_ctx, owner, llama):
    post = await _published(
        client,
        worker_ctx,
        owner,
        llama,
        {"model": llama["ref"], "prompt": "Tell me of foxes.", "max_tokens": 6, "temperature": 0.5},
    )
    reader = await user_session(client)
    response = await client.post(f"/api/v1/posts/{post['id']}/conversation", headers=reader.headers)
    assert response.status_code == 201, response.text
    conversation = response.json()
    assert conversation["owner_id"] == reader.id
    assert conversation["model_ref"] == llama["ref"]
    assert conversation["parameters"] == {"temperature": 0.5, "max_tokens": 6}
    assert conversation["title"] == "Tell me of foxes."
    question, answer = conversation["messages"]
    assert (question["role"], question["content"]) == ("user", "Tell me of foxes.")
    assert (answer["role"], answer["content"]) == ("assistant", post["content"])
    assert answer["parent_id"] == question["id"]
    assert answer["model_version_id"] == llama["version_id"]
    assert answer["parameters"] == {**post["parameters"], "seed": post["seed"]}
    assert answer["completion_tokens"] == post["completion_tokens"]
    assert conversation["current_message_id"] == answer["id"]

    # It is the reader's own conversation in the inference service: they go on chatting.
    turn = await client.post(
        f"/api/v1/conversations/{conversation['id']}/messages",
        json={"content": "And then?", "stream": False},
        headers=reader.headers,
    )
    assert turn.status_code in (200, 201), turn.text
    assert turn.json()["user_message"]["parent_id"] == answer["id"]
    assert turn.json()["message"]["status"] == "complete"
    mine = await client.get(f"/api/v1/conversations/{conversation['id']}", headers=owner.headers)
    assert mine.status_code == 404


async def test_a_conversation_needs_a_visible_published_model_post(
    client, platform, worker_ctx, owner, llama, tiny_llama_dir
):
    secret = await ready_model(platform, owner, tiny_llama_dir, slug="secret", visibility="private")
    hidden = await publish(client, worker_ctx, owner, secret)
    stranger = await user_session(client)
    refused = await client.post(
        f"/api/v1/posts/{hidden['id']}/conversation", headers=stranger.headers
    )
    assert refused.status_code == 404
    assert (await client.get("/api/v1/conversations", headers=stranger.headers)).json()[
        "groups"
    ] == []

    root = await publish(client, worker_ctx, owner, llama)
    said = await client.post(
        f"/api/v1/posts/{root['id']}/replies", json={"text": "Mine."}, headers=stranger.headers
    )
    person = await client.post(
        f"/api/v1/posts/{said.json()['id']}/conversation", headers=stranger.headers
    )
    assert person.status_code == 409
    assert person.json()["code"] == "post_not_published"
